"""Real training on animated figures: the (2+1)D CNN tells actions that one frame cannot."""

from tasks_lib.core.data import write_prepared
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.registry import get_task


def test_actions_are_learnt_beyond_a_single_frame(tmp_path):
    task = get_task("action_recognition")
    dcfg, cfg = task.configs(
        "smoke",
        data_overrides={"n_per_class": 50, "classes": "raise_arms,lower_arms,squat,wave"},
        train_overrides={"epochs": 8, "width": 8, "batch_size": 16},
    )
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    data = task.load(tmp_path)
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    task.fit(model, data, cfg, lambda m, s: None)
    acc = task.evaluate(model, data, "test")["accuracy"]
    single = task.baseline(data, "test")["accuracy"]
    # chance 0.25; raise_arms and lower_arms share their middle frame
    assert acc >= 0.6, acc
    assert acc >= single + 0.15, (acc, single)
