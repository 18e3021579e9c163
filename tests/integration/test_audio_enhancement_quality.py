"""Audio enhancement learns: the mask U-Net raises SI-SDR of noisy FSDD mixtures by several dB."""

import pytest

from tasks_lib.core.data import write_prepared
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.registry import get_task

TASK = "audio_enhancement"


@pytest.mark.slow  # about a minute of CPU on 2 cores
def test_mask_unet_improves_si_sdr_well_beyond_doing_nothing(tmp_path):
    task = get_task(TASK)
    dcfg, cfg = task.configs(
        "smoke", data_overrides={"max_samples": 500}, train_overrides={"epochs": 4, "width": 32, "lr": 3e-3}
    )
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    data = task.load(tmp_path)
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    before = task.evaluate(model, data, "test")["si_sdr_improvement"]
    task.fit(model, data, cfg, lambda m, s: None)
    m = task.evaluate(model, data, "test")
    print(TASK, m)
    # returning the noisy input unchanged scores 0 dB; an untrained mask (about 0.5 everywhere) about 0
    assert m["si_sdr_improvement"] > 3.0, m
    assert m["si_sdr_improvement"] > before + 3.0
    assert m["si_sdr_out"] > m["si_sdr_in"]
