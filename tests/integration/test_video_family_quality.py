"""Real training for the two tasks of the video family: the (2+1)D CNN learns motion, which the
same net on a single frame cannot see.

video_classification: about a minute on 2 free cores, 15 epochs of 224 clips; 4 balanced classes,
64 test clips: chance 0.25, and a right/left pair looks alike on one frame.
action_recognition: ~45 s on 2 cores under load, 12 epochs of 640 clips; raise_arms and lower_arms
are exact time reversals of each other, only motion tells them apart. Measured: 1.00 vs single
frame 0.72 (chance 0.5).
"""

import pytest

from tests import smoke

TRAIN = {"width": 16, "batch_size": 16}
CASES = [  # task, data overrides, epochs, accuracy floor, margin over the single frame
    ("video_classification", {"n_per_class": 80, "classes": "right,left,grow,shrink"}, 15, 0.5, 0.2),
    ("action_recognition", {"n_per_class": 400, "classes": "raise_arms,lower_arms"}, 12, 0.9, 0.1),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, data, epochs, floor, margin", CASES, ids=[c[0] for c in CASES])
def test_motion_is_learnt_beyond_a_single_frame(name, data, epochs, floor, margin, tmp_path):
    run = smoke.train(name, tmp_path, data=data, train={**TRAIN, "epochs": epochs})
    acc = run.task.evaluate(run.model, run.data, "test")["accuracy"]
    single = run.task.baseline(run.data, "test")["accuracy"]  # the same net on one frame
    assert acc >= floor, acc
    assert acc > single + margin, (acc, single)
