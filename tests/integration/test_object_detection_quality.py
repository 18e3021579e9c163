"""Object detection learns: a short from-scratch training finds objects far above chance."""

import time

import pytest

from tests import smoke

TASK = "object_detection"


@pytest.mark.slow  # about 1,800 training images at 64 px: likely 30-60 s on 2 idle cores, unmeasured idle
def test_small_detector_finds_objects_well_above_chance(tmp_path):
    run = smoke.prepare(
        TASK,
        tmp_path,
        data={"n_scenes": 320, "image_size": 64, "max_objects": 3},
        train={"epochs": 8, "batch_size": 16, "lr": 4e-3},
    )
    t0 = time.perf_counter()
    run = smoke.train_prepared(run)
    m = run.task.evaluate(run.model, run.data, "test")
    print(f"map {m['map']:.3f} map_50 {m['map_50']:.3f} in {time.perf_counter() - t0:.1f}s")
    # An untrained FCOS scores 0.000 here (contract smoke run); measured after this training: mAP@.5 0.140,
    # mAP 0.048 (CPU, deterministic). Half of that cannot be reached by untrained or random boxes.
    assert m["map_50"] > 0.07
    assert m["map"] > 0.02
