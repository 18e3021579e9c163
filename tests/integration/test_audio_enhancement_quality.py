"""Audio enhancement learns: the mask U-Net raises SI-SDR of noisy FSDD mixtures by several dB."""

import pytest

from tests import smoke

TASK = "audio_enhancement"


@pytest.mark.slow  # about a minute of CPU on 2 cores
def test_mask_unet_improves_si_sdr_well_beyond_doing_nothing(tmp_path):
    run = smoke.train(
        TASK, tmp_path, data={"max_samples": 500}, train={"epochs": 4, "width": 32, "lr": 3e-3}, untrained=True
    )
    before = run.untrained["si_sdr_improvement"]
    m = run.task.evaluate(run.model, run.data, "test")
    print(TASK, m)
    # returning the noisy input unchanged scores 0 dB; an untrained mask (about 0.5 everywhere) about 0
    assert m["si_sdr_improvement"] > 3.0, m
    assert m["si_sdr_improvement"] > before + 3.0
    assert m["si_sdr_out"] > m["si_sdr_in"]
