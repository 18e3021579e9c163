"""Real training on generated motion clips: the (2+1)D CNN beats chance and its single-frame twin."""

import pytest

from tasks_lib.core.data import write_prepared
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.registry import get_task


@pytest.mark.slow  # about a minute on 2 free cores: 15 epochs of 224 clips
def test_motion_is_learnt_and_one_frame_is_not_enough(tmp_path):
    task = get_task("video_classification")
    dcfg, cfg = task.configs(
        "smoke",
        data_overrides={"n_per_class": 80, "classes": "right,left,grow,shrink"},
        train_overrides={"epochs": 15, "width": 16, "batch_size": 16},
    )
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    data = task.load(tmp_path)
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    task.fit(model, data, cfg, lambda m, s: None)
    acc = task.evaluate(model, data, "test")["accuracy"]
    single = task.baseline(data, "test")["accuracy"]
    # 4 balanced classes, 64 test clips: chance 0.25; a right/left pair looks alike on one frame
    assert acc >= 0.5, acc
    assert acc >= single + 0.2, (acc, single)
