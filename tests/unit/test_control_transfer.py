"""transfer_learning: the split matches image_classification's, the backbone loads or fails clearly,
linear probing leaves the backbone untouched, the loader reads the prepared layout."""

import numpy as np
import pytest
import torch

from tasks_lib.core.bundle import save_bundle
from tasks_lib.core.data import write_prepared
from tasks_lib.core.registry import get_task
from tasks_lib.core.task import LoadedModel, Prepared
from tests import smoke

INFO = {"classes": [str(i) for i in range(10)], "image_shape": [8, 8, 1], "mean": [0.3], "std": [0.4], "hflip": False}


def _ic_bundle(tmp_path, width):
    ic = get_task("image_classification")
    cfg = ic.config_cls.from_dict({"width": width})
    torch.manual_seed(0)
    return save_bundle(LoadedModel(ic, cfg, INFO, ic.build_model(cfg, INFO)), tmp_path / f"ic{width}")


def test_backbone_weights_are_copied(tmp_path):
    task = get_task("transfer_learning")
    bundle = _ic_bundle(tmp_path, 16)
    cfg = task.config_cls.from_dict({"backbone": str(bundle), "backbone_width": 16})
    model = task.build_model(cfg, INFO)
    task.load_backbone(model, str(bundle))
    from tasks_lib.core.bundle import load_bundle

    up = load_bundle(bundle).module
    assert torch.equal(model.features[0].weight, up.features[0].weight)


def test_a_mismatched_backbone_fails_with_a_clear_message(tmp_path):
    task = get_task("transfer_learning")
    bundle = _ic_bundle(tmp_path, 8)
    cfg = task.config_cls.from_dict({"backbone": str(bundle), "backbone_width": 32})
    with pytest.raises(ValueError, match="backbone_width"):
        task.load_backbone(task.build_model(cfg, INFO), str(bundle))


def test_linear_probe_trains_only_the_head(tmp_path):
    run = smoke.prepare("transfer_learning", tmp_path / "data")
    task, data = run.task, run.data
    bundle = _ic_bundle(tmp_path, 16)
    cfg = task.config_cls.from_dict(
        {"backbone": str(bundle), "backbone_width": 16, "mode": "linear_probe", "epochs": 1}
    )
    model, _ = smoke.fit(task, data, cfg)
    from tasks_lib.core.bundle import load_bundle

    up = load_bundle(bundle).module
    for (k, a), b in zip(model.features.state_dict().items(), up.features.state_dict().values(), strict=True):
        assert torch.equal(a, b), k  # weights and BN statistics untouched
    assert not torch.equal(model.head[-1].weight, task.build_model(cfg, data.info).head[-1].weight)


def test_split_matches_image_classification(tmp_path):
    """val/test are exactly image_classification's val/test images (the backbone never trained on them)."""
    ic, tl = get_task("image_classification"), get_task("transfer_learning")
    ic_dcfg, _ = ic.configs("quick")
    tl_dcfg, _ = tl.configs("quick")
    ic_m = ic.prepare(ic_dcfg, tmp_path / "ic").manifest
    tl_m = tl.prepare(tl_dcfg, tmp_path / "tl").manifest
    for s in ("val", "test"):
        assert set(tl_m.loc[tl_m.split == s, "sha1"]) == set(ic_m.loc[ic_m.split == s, "sha1"])
    train = tl_m[tl_m.split == "train"]
    assert len(train) == 100 and (train.groupby("label").size() == 10).all()
    assert set(train.sha1) <= set(ic_m.loc[ic_m.split == "train", "sha1"])
    x = np.load(tmp_path / "tl" / "test_x.npy")
    assert x.mean() > 128  # inverted ink


def test_loader_reads_the_prepared_layout(tmp_path):
    for s, n in (("train", 2), ("val", 1), ("test", 3)):
        np.save(tmp_path / f"{s}_x.npy", np.zeros((n, 8, 8, 1), dtype=np.uint8))
        np.save(tmp_path / f"{s}_y.npy", np.arange(n, dtype=np.int64))
    import pandas as pd

    write_prepared(tmp_path, Prepared(pd.DataFrame({"split": ["train"]}), INFO))
    data = get_task("transfer_learning").load(tmp_path)
    assert data.x["test"].shape == (3, 8, 8, 1) and data.y["train"].tolist() == [0, 1]
