"""image_generation learns: a short DCGAN run (fallback judge) lands far closer to the real digits,
in the judge's feature space, than the per-pixel Gaussian baseline."""

import pytest

from tasks_lib.core.bundle import load_bundle, save_bundle
from tasks_lib.core.task import LoadedModel
from tests import smoke


@pytest.mark.slow  # ~170 s measured on the shared 2-core box at load ~20; a few hundred GAN steps
def test_short_gan_run_beats_the_per_pixel_gaussian(tmp_path):
    run = smoke.train("image_generation", tmp_path / "data", train={"epochs": 12})
    task, data, cfg, model, logged = run.task, run.data, run.cfg, run.model, run.logged
    m = task.evaluate(model, data)
    base = task.baseline(data)
    assert m["fd_real_floor"] == base["fd_real_floor"]  # one judge for both
    assert m["judge_accuracy_on_real"] > 0.8  # the fallback judge is a real digit classifier
    assert m["frechet_distance"] < 0.6 * base["frechet_distance"]
    assert logged[-1]["val_frechet_distance"] < logged[0]["val_frechet_distance"]
    # the bundle carries its judge: a reloaded model scores the same
    reloaded = load_bundle(save_bundle(LoadedModel(task, cfg, data.info, model), tmp_path / "bundle"))
    assert task.evaluate(reloaded.module, data)["frechet_distance"] == m["frechet_distance"]
