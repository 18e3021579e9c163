"""Image captioning learns to compose: on scenes holding colour-kind pairs never seen in training,
a short training captions far better than nearest-neighbour retrieval."""

import time

import pytest

from tests import smoke

TASK = "image_captioning"


@pytest.mark.slow  # 1,400 training scenes, 6 epochs of a small net: 219 s wall on 2 loaded cores (1 thread)
def test_small_captioner_beats_retrieval_on_unseen_combinations(tmp_path):
    run = smoke.prepare(
        TASK,
        tmp_path,
        profile="quick",
        data={"n_scenes": 2000},
        train={"epochs": 6, "width": 16, "dim": 64, "layers": 2, "val_images": 100},
    )
    t0 = time.perf_counter()
    run = smoke.train_prepared(run)
    m = run.task.evaluate(run.model, run.data, "test")
    b = run.task.baseline(run.data, "test")
    print(f"model {m} baseline {b} in {time.perf_counter() - t0:.1f}s")
    # Measured (CPU, deterministic): BLEU-4 0.359 vs retrieval 0.171, CIDEr-D 2.33 vs 1.17. The asserts ask
    # for half of each gap; an untrained captioner scores ~0.005 BLEU-4 (smoke flow run).
    assert m["bleu4"] > b["bleu4"] + 0.09
    assert m["cider"] > b["cider"] + 0.5
