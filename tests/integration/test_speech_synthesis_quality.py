"""Speech synthesis learns: after training, synthesised held-out sentences are much closer to the
espeak-ng references (MCD) and about as long as them."""

import pytest

from tasks_lib.core.data import write_prepared
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.registry import get_task

TASK = "speech_synthesis"


@pytest.mark.slow  # about a minute of CPU on 2 cores
def test_text_to_mel_gets_much_closer_to_the_references(tmp_path):
    task = get_task(TASK)
    dcfg, cfg = task.configs(
        "smoke",
        data_overrides={"n_train": 80, "n_val": 4, "n_test": 6},
        train_overrides={"epochs": 10, "width": 64, "lr": 3e-3},
    )
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    data = task.load(tmp_path)
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    untrained = task.evaluate(model, data, "test")
    task.fit(model, data, cfg, lambda m, s: None)
    m = task.evaluate(model, data, "test")
    print(TASK, m)
    assert m["mcd"] < 0.7 * untrained["mcd"], (m, untrained)
    assert 0.6 < m["length_ratio"] < 1.5, m  # learned durations: roughly the right length
