"""Tiny Shakespeare at a small test setting: the char GPT beats the unigram model by far."""

import math

from tasks_lib.core.task import LoadedModel
from tests import smoke


def test_small_setting_models_characters_far_better_than_unigrams(tmp_path):
    run = smoke.train(
        "text_generation", tmp_path, data={"max_chars": 200_000}, train={"epochs": 3, "steps_per_epoch": 100, "dim": 64}
    )
    task, data, cfg, model = run.task, run.data, run.cfg, run.model
    m = task.evaluate(model, data, "test")
    base = task.baseline(data, "test")
    assert m["loss"] < math.log(len(data.info["chars"])) - 1.5  # uniform guessing: log(V) ~ 4.2 nats
    assert m["loss"] < base["unigram_loss"] - 0.5
    assert m["perplexity"] == math.exp(m["loss"])
    # sampling is reproducible from the seed and yields known characters
    loaded = LoadedModel(task, cfg, data.info, model)
    req = {"text": "ROMEO:\n", "options": {"max_new_tokens": 30, "seed": 3}}
    a, b = task.predict(loaded, [req, req])
    assert a == b and len(a["generated"]) == 30 and set(a["generated"]) <= set(data.info["chars"][1:])
