"""transfer_learning: a pretrained digits backbone, fine-tuned on 10 inverted-ink labels per class,
beats the same network trained from scratch on the same labels and budget."""

from tasks_lib.core.bundle import save_bundle
from tasks_lib.core.task import LoadedModel
from tests import smoke


def test_finetuned_backbone_beats_scratch_at_the_same_budget(tmp_path):
    ic = smoke.train("image_classification", tmp_path / "ic", data={"max_samples": 0}, train={"epochs": 8})
    backbone = save_bundle(LoadedModel(ic.task, ic.cfg, ic.data.info, ic.model), tmp_path / "bb")

    tl = smoke.prepare("transfer_learning", tmp_path / "tl")
    task, data = tl.task, tl.data
    budget = {"epochs": 20, "backbone_width": ic.cfg.width}
    tuned_cfg = task.config_cls.from_dict({**budget, "backbone": str(backbone), "mode": "finetune"})
    scratch_cfg = task.config_cls.from_dict({**budget, "mode": "scratch"})
    tuned = task.evaluate(smoke.train_prepared(tl, tuned_cfg).model, data)["accuracy"]
    scratch = task.evaluate(smoke.train_prepared(tl, scratch_cfg).model, data)["accuracy"]
    assert tuned > 0.7
    assert tuned > scratch + 0.01  # measured 0.930 vs 0.908 (deterministic on CPU)
