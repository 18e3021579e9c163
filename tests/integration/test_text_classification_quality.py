"""AG News topics at the smoke profile: real training, well above chance, near the TF-IDF baseline."""

from tests import smoke


def test_smoke_profile_learns_topics_well_above_chance(tmp_path):
    run = smoke.train("text_classification", tmp_path, data={"max_samples": 2000})
    m = run.task.evaluate(run.model, run.data, "test")
    base = run.task.baseline(run.data, "test")
    assert m["accuracy"] > 0.25 + 0.4  # chance is 0.25 on four balanced topics; ~400 test texts
    assert m["macro_f1"] > 0.6
    assert m["accuracy"] > base["accuracy"] - 0.1  # in the baseline's league already at this size
