"""The environment side of game control: Gymnasium CartPole-v1, state or pixel observations.

Pixels: pygame is not available, so frames are drawn from the state with numpy
(anti-aliased, so sub-pixel motion shows). One observation is a 64x64x3 uint8 frame
whose channels hold the scene at three times (R: now, G: 2 steps ago, B: 4 steps
ago): a single frame then carries the velocities a policy needs, so a served request
is one frame, not a stack.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

FRAME = 64
LAGS = (0, 2, 4)  # channel c shows the scene LAGS[c] steps ago
X_LIMIT = 2.4  # CartPole terminates beyond this cart position
_SCALE = FRAME / (2 * X_LIMIT * 1.1)  # pixels per world unit, with a small margin
_CART_W, _CART_H, _POLE_LEN, _POLE_W = 0.5, 0.3, 1.6, 0.09  # world units (pole drawn longer than physical)
_CART_Y = 0.72 * FRAME  # pixel row of the cart centre


def render_frames(states: np.ndarray) -> np.ndarray:
    """Grey-level silhouettes (N, 64, 64) in 0-1 of CartPole states (N, 4), vectorised."""
    states = np.asarray(states, dtype=np.float64).reshape(-1, 4)
    v, u = np.mgrid[0:FRAME, 0:FRAME].astype(np.float64) + 0.5  # pixel centres (row, col)
    cx = (FRAME / 2 + states[:, 0] * _SCALE)[:, None, None]
    theta = states[:, 2][:, None, None]
    # cart: a rectangle, anti-aliased by the distance to its edges
    dx = np.abs(u[None] - cx) - _CART_W * _SCALE / 2
    dy = np.abs(v[None] - _CART_Y) - _CART_H * _SCALE / 2
    cart = np.clip(0.5 - np.maximum(dx, dy), 0, 1)
    # pole: a thick segment from the cart top, angle theta from vertical (positive = right)
    px, py = cx, _CART_Y - _CART_H * _SCALE / 2
    ex, ey = np.sin(theta) * _POLE_LEN * _SCALE, -np.cos(theta) * _POLE_LEN * _SCALE
    t = np.clip(((u[None] - px) * ex + (v[None] - py) * ey) / (_POLE_LEN * _SCALE) ** 2, 0, 1)
    dist = np.hypot(u[None] - (px + t * ex), v[None] - (py + t * ey))
    pole = np.clip(0.5 - (dist - _POLE_W * _SCALE / 2), 0, 1)
    ground = (np.abs(v - (_CART_Y + _CART_H * _SCALE / 2 + 1)) < 0.5).astype(np.float64)[None]
    return np.maximum(np.maximum(cart, pole), 0.35 * ground)


def pixel_observation(history: np.ndarray) -> np.ndarray:
    """(N, max(LAGS)+1, 4) state histories (newest first) -> (N, 64, 64, 3) uint8 frames."""
    n = len(history)
    lagged = history[:, list(LAGS)].reshape(-1, 4)
    grey = render_frames(lagged).reshape(n, len(LAGS), FRAME, FRAME)
    return np.round(grey.transpose(0, 2, 3, 1) * 255).astype(np.uint8)


class VecEnv:
    """``n`` CartPole environments stepped in lockstep, auto-reset, state or pixel observations."""

    def __init__(self, env_id: str, seeds: list[int], observation: str):
        self.envs = [gym.make(env_id) for _ in seeds]
        self.observation = observation
        self.history = np.zeros((len(seeds), max(LAGS) + 1, 4))
        first = [env.reset(seed=int(s))[0] for env, s in zip(self.envs, seeds, strict=True)]
        for i, o in enumerate(first):
            self.history[i] = o
        self.episode_return = np.zeros(len(seeds))
        self.finished_returns: list[float] = []

    def state_dict(self) -> dict[str, Any]:
        """All the next steps depend on, as plain Python values: each env's physics, step count
        and RNG, the state histories and running returns (a resumed run continues the same episodes)."""
        return {
            "history": self.history.tolist(),
            "episode_return": self.episode_return.tolist(),
            "envs": [_env_state(env) for env in self.envs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = np.asarray(state["history"], dtype=np.float64).reshape(self.history.shape)
        self.episode_return = np.asarray(state["episode_return"], dtype=np.float64)
        for env, s in zip(self.envs, state["envs"], strict=True):
            _set_env_state(env, s)

    def obs(self) -> np.ndarray:
        if self.observation == "pixels":
            return pixel_observation(self.history)
        return self.history[:, 0].astype(np.float32)

    def _obs_of(self, i: int, state: np.ndarray) -> np.ndarray:
        """The observation env ``i`` would give with ``state`` as its newest state (for bootstrapping)."""
        hist = np.concatenate([state[None], self.history[i, :-1]])[None]
        return pixel_observation(hist)[0] if self.observation == "pixels" else state.astype(np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        """-> (next obs, rewards, terminated, {env index: final obs of a time-limit truncation})."""
        rewards = np.zeros(len(self.envs), dtype=np.float32)
        terminated = np.zeros(len(self.envs), dtype=bool)
        truncated_obs = {}
        for i, (env, a) in enumerate(zip(self.envs, actions, strict=True)):
            o, r, term, trunc, _ = env.step(int(a))
            rewards[i], terminated[i] = r, term
            self.episode_return[i] += r
            if term or trunc:
                if trunc and not term:
                    truncated_obs[i] = self._obs_of(i, o)
                self.finished_returns.append(float(self.episode_return[i]))
                self.episode_return[i] = 0
                self.history[i] = env.reset()[0]  # the env's own RNG continues: deterministic from the seed
            else:
                self.history[i] = np.concatenate([o[None], self.history[i, :-1]])
        return (
            self.obs(),
            rewards,
            terminated | np.array([i in truncated_obs for i in range(len(self.envs))]),
            (truncated_obs),
        )


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit:
    while not isinstance(env, gym.wrappers.TimeLimit):
        env = env.env
    return env


def _env_state(env: gym.Env) -> dict[str, Any]:
    """A CartPole env's full state: physics, termination counter, elapsed steps, RNG (as JSON: 128-bit ints)."""
    u = env.unwrapped
    return {
        "state": None if u.state is None else np.asarray(u.state, dtype=np.float64).tolist(),
        "steps_beyond_terminated": u.steps_beyond_terminated,
        "elapsed_steps": int(_time_limit(env)._elapsed_steps),
        "rng": json.dumps(u.np_random.bit_generator.state),
    }


def _set_env_state(env: gym.Env, s: dict[str, Any]) -> None:
    u = env.unwrapped
    u.state = None if s["state"] is None else np.asarray(s["state"], dtype=np.float64)
    u.steps_beyond_terminated = s["steps_beyond_terminated"]
    _time_limit(env)._elapsed_steps = s["elapsed_steps"]
    u.np_random.bit_generator.state = json.loads(s["rng"])


def run_episodes(
    env_id: str, seeds: list[int], observation: str, policy: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """One episode per seed, all in lockstep; ``policy(obs, alive_index) -> actions``.

    Returns (returns per seed, lengths per seed).
    """
    envs = [gym.make(env_id) for _ in seeds]
    history = np.zeros((len(seeds), max(LAGS) + 1, 4))
    for i, (env, s) in enumerate(zip(envs, seeds, strict=True)):
        history[i] = env.reset(seed=int(s))[0]
    returns, lengths = np.zeros(len(seeds)), np.zeros(len(seeds), dtype=np.int64)
    alive = np.ones(len(seeds), dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        obs = pixel_observation(history[idx]) if observation == "pixels" else history[idx, 0].astype(np.float32)
        actions = policy(obs, idx)
        for i, a in zip(idx, actions, strict=True):
            o, r, term, trunc, _ = envs[i].step(int(a))
            returns[i] += r
            lengths[i] += 1
            history[i] = np.concatenate([o[None], history[i, :-1]])
            if term or trunc:
                alive[i] = False
    return returns, lengths
