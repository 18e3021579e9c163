"""Real training at a small 'test' setting: the U-Net's masks beat Otsu thresholding by a wide margin."""

from tasks_lib.core.data import write_prepared
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.registry import get_task

TASK = "image_segmentation"
DATA = {"n_train": 320, "n_val": 32, "n_test": 64, "image_size": 32, "min_object": 10, "max_object": 20}
TRAIN = {"epochs": 8, "width": 8, "depth": 2, "batch_size": 16, "lr": 5e-3}


def test_small_unet_beats_otsu_on_unseen_scenes(tmp_path):
    task = get_task(TASK)
    dcfg, cfg = task.configs("smoke", data_overrides=DATA, train_overrides=TRAIN)
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    data = task.load(tmp_path)
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    task.fit(model, data, cfg, lambda m, s: None)
    m, base = task.evaluate(model, data), task.baseline(data)
    assert m["iou"] > 0.6, m
    assert m["iou"] > base["iou"] + 0.15, (m, base)
