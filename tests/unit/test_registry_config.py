from dataclasses import dataclass

import pytest

from tasks_lib.core.config import TaskConfig
from tasks_lib.core.registry import get_task, register, task_names, unregister
from tasks_lib.core.task import Task


def test_registry_refuses_a_duplicate_name():
    existing = type(get_task("image_classification"))
    clone = type("Clone", (existing,), {})
    with pytest.raises(ValueError, match="already registered under the name 'image_classification'"):
        register(clone)
    assert task_names().count("image_classification") == 1


def test_registry_registers_and_unregisters_a_new_task():
    new = type("Scratch", (type(get_task("image_classification")),), {"name": "scratch_task"})
    register(new)
    try:
        assert "scratch_task" in task_names()
        assert isinstance(get_task("scratch_task"), Task)
    finally:
        unregister("scratch_task")
    assert "scratch_task" not in task_names()


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(KeyError, match="image_classification"):
        get_task("no_such_task")


@dataclass(frozen=True)
class _Cfg(TaskConfig):
    width: int = 8


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['widht'\]"):
        _Cfg.from_dict({"widht": 3})


def test_config_coerces_cli_strings_and_rejects_garbage():
    cfg = _Cfg.from_dict({"epochs": "3", "lr": "0.5", "compile": "false"})
    assert (cfg.epochs, cfg.lr, cfg.compile) == (3, 0.5, False)
    with pytest.raises(ValueError, match="epochs: expected int"):
        _Cfg.from_dict({"epochs": "three"})
    with pytest.raises(ValueError, match="expected an integer"):
        _Cfg.from_dict({"epochs": 2.5})


def test_config_layers_profile_params_overrides_in_order():
    task = get_task("image_classification")
    smoke_epochs = task.profiles["smoke"]["train"]["epochs"]
    _, cfg = task.configs("smoke")
    assert cfg.epochs == smoke_epochs
    _, cfg = task.configs("smoke", params={"train": {"epochs": 7, "lr": 0.01}})
    assert (cfg.epochs, cfg.lr) == (7, 0.01)
    _, cfg = task.configs("smoke", params={"train": {"epochs": 7}}, train_overrides={"epochs": "9"})
    assert cfg.epochs == 9
    with pytest.raises(ValueError, match="Unknown profile"):
        task.configs("huge")
    with pytest.raises(ValueError, match="Unknown source"):
        task.configs("smoke", data_overrides={"source": "mnist"})
    with pytest.raises(ValueError, match="unknown key"):
        task.configs("smoke", params={"trian": {}})


def test_params_yaml_leaves_profile_data_settings_to_the_profiles():
    """params.yaml overrides profiles: a data key set there would make smoke runs full size."""
    import yaml

    from flows.settings import PROJECT_ROOT

    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    assert sorted(params["tasks"]) == task_names()  # every task has a DVC stage, and only those
    for name in params["tasks"]:
        task = get_task(name)
        for profile in task.profiles:
            task.configs(profile, params[name])  # every section builds valid configs (unknown keys fail)
        set_by_profiles = {k for p in get_task(name).profiles.values() for k in p.get("data", {})}
        clash = set(params[name].get("data") or {}) & set_by_profiles
        assert not clash, f"{name}: params.yaml sets {sorted(clash)}, which its profiles set"
