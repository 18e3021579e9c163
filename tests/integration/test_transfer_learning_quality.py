"""transfer_learning: a pretrained digits backbone, fine-tuned on 10 inverted-ink labels per class,
beats the same network trained from scratch on the same labels and budget."""

from tasks_lib.core.bundle import save_bundle
from tasks_lib.core.data import write_prepared
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.registry import get_task
from tasks_lib.core.task import LoadedModel


def _trained(task, cfg, data):
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    task.fit(model, data, cfg, lambda m, s: None)
    return model


def test_finetuned_backbone_beats_scratch_at_the_same_budget(tmp_path):
    ic = get_task("image_classification")
    ic_dcfg, ic_cfg = ic.configs("smoke", train_overrides={"epochs": 8})
    write_prepared(tmp_path / "ic", ic.prepare(ic_dcfg.replace(max_samples=0), tmp_path / "ic"))
    ic_data = ic.load(tmp_path / "ic")
    backbone = save_bundle(LoadedModel(ic, ic_cfg, ic_data.info, _trained(ic, ic_cfg, ic_data)), tmp_path / "bb")

    task = get_task("transfer_learning")
    dcfg, _ = task.configs("smoke")
    write_prepared(tmp_path / "tl", task.prepare(dcfg, tmp_path / "tl"))
    data = task.load(tmp_path / "tl")
    budget = {"epochs": 20, "backbone_width": ic_cfg.width}
    tuned_cfg = task.config_cls.from_dict({**budget, "backbone": str(backbone), "mode": "finetune"})
    scratch_cfg = task.config_cls.from_dict({**budget, "mode": "scratch"})
    tuned = task.evaluate(_trained(task, tuned_cfg, data), data)["accuracy"]
    scratch = task.evaluate(_trained(task, scratch_cfg, data), data)["accuracy"]
    assert tuned > 0.7
    assert tuned > scratch + 0.01  # measured 0.930 vs 0.908 (deterministic on CPU)
