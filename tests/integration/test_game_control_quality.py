"""game_control learns: PPO on CartPole state beats the random policy by a wide margin in seconds;
the pixel variant trains, round-trips and serves frames."""

import numpy as np
import torch

from tasks_lib.core.bundle import load_bundle, save_bundle
from tasks_lib.core.task import LoadedModel
from tests import smoke

TASK = "game_control"


def _train(tmp_path, data_overrides, train_overrides):
    run = smoke.train(TASK, tmp_path, data=data_overrides, train=train_overrides)
    return run.task, run.data, run.cfg, run.model, run.logged


def test_ppo_on_state_beats_the_random_policy(tmp_path):
    # ~10k environment steps, 800 gradient steps
    task, data, _, model, logged = _train(
        tmp_path, {"test_episodes": 10, "val_episodes": 5}, {"epochs": 4, "rollouts_per_epoch": 5}
    )
    m, base = task.evaluate(model, data), task.baseline(data)
    assert len(logged) == 4 and all(np.isfinite(x["train_loss"]) for x in logged)
    assert base["mean_return"] < 40  # random CartPole: ~22
    assert m["mean_return"] > max(120, 4 * base["mean_return"])


def test_pixel_variant_trains_and_serves_frames(tmp_path):
    task, data, cfg, model, logged = _train(
        tmp_path, {"observation": "pixels"}, {"epochs": 1, "max_steps_per_epoch": 2, "n_steps": 8}
    )
    assert model(torch.zeros(2, 64, 64, 3, dtype=torch.uint8))[0].shape == (2, 2)
    loaded = load_bundle(save_bundle(LoadedModel(task, cfg, data.info, model), tmp_path / "bundle"))
    requests = task.request_examples(data, 2)
    assert np.asarray(requests[0]["array"]).shape == (64, 64, 3)
    answers = task.predict(loaded, requests)
    assert {a["action_name"] for a in answers} <= {"push_left", "push_right"}
    assert abs(sum(answers[0]["probabilities"].values()) - 1) < 1e-4
    files = task.examples(loaded.module, data)
    assert {"return_curve.png", "evaluation_returns.png", "episode_frames.png"} <= set(files)
