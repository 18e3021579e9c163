"""AG News topics at the smoke profile: real training, well above chance, near the TF-IDF baseline."""

from tasks_lib.core.data import write_prepared
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.registry import get_task


def test_smoke_profile_learns_topics_well_above_chance(tmp_path):
    task = get_task("text_classification")
    dcfg, cfg = task.configs("smoke", data_overrides={"max_samples": 2000})
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    data = task.load(tmp_path)
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    task.fit(model, data, cfg, lambda m, s: None)
    m = task.evaluate(model, data, "test")
    base = task.baseline(data, "test")
    assert m["accuracy"] > 0.25 + 0.4  # chance is 0.25 on four balanced topics; ~400 test texts
    assert m["macro_f1"] > 0.6
    assert m["accuracy"] > base["accuracy"] - 0.1  # in the baseline's league already at this size
