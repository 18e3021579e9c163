"""Speech synthesis learns: after training, synthesised held-out sentences are much closer to the
espeak-ng references (MCD) and about as long as them."""

import pytest

from tests import smoke

TASK = "speech_synthesis"


@pytest.mark.slow  # about a minute of CPU on 2 cores
def test_text_to_mel_gets_much_closer_to_the_references(tmp_path):
    run = smoke.train(
        TASK,
        tmp_path,
        data={"n_train": 80, "n_val": 4, "n_test": 6},
        train={"epochs": 10, "width": 64, "lr": 3e-3},
        untrained=True,
    )
    untrained = run.untrained
    m = run.task.evaluate(run.model, run.data, "test")
    print(TASK, m)
    assert m["mcd"] < 0.7 * untrained["mcd"], (m, untrained)
    assert 0.6 < m["length_ratio"] < 1.5, m  # learned durations: roughly the right length
