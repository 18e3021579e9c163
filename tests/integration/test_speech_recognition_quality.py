"""Speech recognition learns real digits: CTC on FSDD (no synthetic speech), well below chance WER."""

import pytest

from tests import smoke

TASK = "speech_recognition"


@pytest.mark.slow  # about a minute of CPU on 2 cores
def test_ctc_model_transcribes_fsdd_digits_far_better_than_chance(tmp_path):
    # FSDD indices 0-4 (test), 5 (val), 6-19 (train) of four speakers; no espeak: seconds, not minutes
    run = smoke.train(
        TASK,
        tmp_path,
        data={"fsdd_max_index": 20, "max_samples": 0, "synth_train": 0, "synth_val": 0, "synth_test": 0},
        train={"epochs": 8, "width": 64, "blocks": 3, "n_mels": 40, "lr": 4e-3, "batch_size": 24},
    )
    m = run.task.evaluate(run.model, run.data, "test")
    print(TASK, m)
    # guessing one of ten digit words gives WER 0.9; an untrained CTC model outputs nothing (WER 1.0)
    assert m["wer"] < 0.4, m
    assert m["cer"] < 0.3, m
