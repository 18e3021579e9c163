"""Tiny Shakespeare at a small test setting: the char GPT beats the unigram model by far."""

import math

from tasks_lib.core.data import write_prepared
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.registry import get_task
from tasks_lib.core.task import LoadedModel


def test_small_setting_models_characters_far_better_than_unigrams(tmp_path):
    task = get_task("text_generation")
    dcfg, cfg = task.configs(
        "smoke", data_overrides={"max_chars": 200_000}, train_overrides={"epochs": 3, "steps_per_epoch": 100, "dim": 64}
    )
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    data = task.load(tmp_path)
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    task.fit(model, data, cfg, lambda m, s: None)
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
