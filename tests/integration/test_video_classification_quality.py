"""Real training on generated motion clips: the (2+1)D CNN beats chance and its single-frame twin."""

import pytest

from tests import smoke


@pytest.mark.slow  # about a minute on 2 free cores: 15 epochs of 224 clips
def test_motion_is_learnt_and_one_frame_is_not_enough(tmp_path):
    run = smoke.train(
        "video_classification",
        tmp_path,
        data={"n_per_class": 80, "classes": "right,left,grow,shrink"},
        train={"epochs": 15, "width": 16, "batch_size": 16},
    )
    acc = run.task.evaluate(run.model, run.data, "test")["accuracy"]
    single = run.task.baseline(run.data, "test")["accuracy"]
    # 4 balanced classes, 64 test clips: chance 0.25; a right/left pair looks alike on one frame
    assert acc >= 0.5, acc
    assert acc >= single + 0.2, (acc, single)
