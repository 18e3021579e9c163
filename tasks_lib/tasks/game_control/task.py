"""The game control task: CartPole-v1 environment spec as data, PPO training, episode returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from tasks_lib.core import engine, expect
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, read_info, read_manifest
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.figures import _pyplot
from tasks_lib.core.registry import register
from tasks_lib.core.schema import Answer
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.tasks.game_control.env import FRAME, LAGS, VecEnv, pixel_observation, run_episodes
from tasks_lib.tasks.game_control.model import ActorCritic

OBSERVATIONS = ("state", "pixels")
ACTION_NAMES = ["push_left", "push_right"]
SEED_OFFSET = {"train": 0, "val": 100_000, "test": 200_000}  # disjoint seed ranges per split


@dataclass(frozen=True)
class GameControlData(DataConfig):
    env_id: str = "CartPole-v1"
    observation: str = "state"  # "state" (4 floats) or "pixels" (64x64x3 frames drawn with numpy)
    train_envs: int = 8  # parallel training environments (one manifest row / reset seed each)
    val_episodes: int = 10  # greedy episodes per epoch to pick the best checkpoint
    test_episodes: int = 20  # fixed-seed evaluation episodes (the primary metric)


@dataclass(frozen=True)
class GameControlConfig(TaskConfig):
    """PPO. One gradient step = one minibatch update; an epoch = ``rollouts_per_epoch`` rollouts."""

    epochs: int = 20
    batch_size: int = 256  # minibatch (env transitions) per gradient step
    lr: float = 1e-3  # annealed linearly to 0
    grad_clip: float = 0.5
    n_steps: int = 32  # steps per environment per rollout
    rollouts_per_epoch: int = 20
    ppo_epochs: int = 20  # passes over each rollout
    gamma: float = 0.98
    gae_lambda: float = 0.8
    clip: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    hidden: int = 64
    keep_best: bool = True  # end with the checkpoint that was best on the val episodes


@dataclass
class EnvData:
    """The prepared environment spec: env id, observation kind, seeds per split."""

    info: dict[str, Any]
    seeds: dict[str, list[int]]


def obs_shape(observation: str) -> list[int]:
    return [FRAME, FRAME, 3] if observation == "pixels" else [4]


class PPORun:
    """What PPO keeps beside the model and optimiser: the training envs, env steps, the best weights."""

    def __init__(self, venv: VecEnv):
        self.venv = venv
        self.env_steps = 0
        self.best_value = -np.inf
        self.best_state: dict[str, torch.Tensor] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "venv": self.venv.state_dict(),
            "env_steps": self.env_steps,
            "best_value": self.best_value,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.venv.load_state_dict(state["venv"])
        self.env_steps, self.best_value, self.best_state = state["env_steps"], state["best_value"], state["best_state"]


class ActionAnswer(Answer):
    action: int
    action_name: str
    probabilities: dict[str, float]
    value: float = Field(description="the critic's value of the observation")


@register
class GameControl(Task):
    """Game control: PPO actor-critic on Gymnasium CartPole-v1, state or pixels (seed example 8)."""

    name = "game_control"
    seed_sections = (8,)
    metric = "mean_return"
    request_fields = ("array",)
    answer_model = ActionAnswer
    config_cls = GameControlConfig
    data_config_cls = GameControlData
    default_source = "gymnasium"
    single_process_reason = (
        "PPO collects its rollouts inside the recipe's batches: every process would play the same "
        "episodes, so splitting the minibatches saves nothing of the cost that dominates (data-parallel "
        "PPO needs each rank to own its environments)"
    )
    profiles = {
        "smoke": {"data": {"val_episodes": 2, "test_episodes": 4}, "train": {"epochs": 2, "rollouts_per_epoch": 2}},
        "quick": {"train": {"epochs": 10}},
        "full": {"data": {"test_episodes": 100}, "train": {"epochs": 40}},
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "gymnasium": DataSource(
                "gymnasium", "a Gymnasium environment (CartPole-v1), stepped during training", "generator"
            )
        }

    # -- data -------------------------------------------------------------------
    def prepare(self, dcfg: GameControlData, out: Path) -> Prepared:
        if dcfg.observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got '{dcfg.observation}'")
        env = gym.make(dcfg.env_id)
        spec = {
            "env_id": dcfg.env_id,
            "observation": dcfg.observation,
            "obs_shape": obs_shape(dcfg.observation),
            "state_shape": list(env.observation_space.shape),
            "state_low": [float(v) for v in env.observation_space.low],
            "state_high": [float(v) for v in env.observation_space.high],
            "n_actions": int(env.action_space.n),
            "action_names": ACTION_NAMES[: int(env.action_space.n)],
            "max_episode_steps": int(env.spec.max_episode_steps),
            "reward_threshold": float(env.spec.reward_threshold or 0),
            "frame_lags": list(LAGS) if dcfg.observation == "pixels" else [],
        }
        counts = {"train": dcfg.train_envs, "val": dcfg.val_episodes, "test": dcfg.test_episodes}
        base = 1_000_000 * dcfg.split_seed
        # Each split's episodes come from its own seed range: no episode crosses splits and adding episodes
        # to one split leaves the others as they were, so no hash split is needed.
        seeds = {s: [base + SEED_OFFSET[s] + i for i in range(counts[s])] for s in SPLITS}
        rows = []
        for s in SPLITS:
            for i, seed in enumerate(seeds[s]):
                state = env.reset(seed=seed)[0]
                rows.append(
                    {
                        "sample_id": f"{s}/{i}",
                        "split": s,
                        "seed": seed,
                        "env_id": dcfg.env_id,
                        "observation": dcfg.observation,
                        "obs_shape": json.dumps(spec["obs_shape"]),  # e.g. "[4]": a string, never parsed as a number
                        "state_dim": int(env.observation_space.shape[0]),
                        "n_actions": spec["n_actions"],
                        "max_episode_steps": spec["max_episode_steps"],
                        "initial_state_abs_max": float(np.abs(state).max()),
                        "sha1": str(seed),  # an episode's content is its seed
                    }
                )
        env.close()
        out.mkdir(parents=True, exist_ok=True)
        (out / "spec.json").write_text(json.dumps({**spec, "seeds": seeds}, indent=2, sort_keys=True) + "\n")
        manifest = add_leak_column(pd.DataFrame(rows))
        info = {**spec, "seeds": seeds, "n_episodes": {s: len(seeds[s]) for s in SPLITS}}
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        shape = json.dumps(info["obs_shape"])
        return [
            expect.in_set("env_id", ["CartPole-v1"], "the model, renderer and 475 target are for CartPole-v1"),
            expect.in_set("observation", list(OBSERVATIONS), "state or pixels"),
            expect.in_set("obs_shape", [shape], "one observation"),
            expect.in_set("state_dim", [4], "CartPole state: cart position, velocity, pole angle, angular velocity"),
            expect.in_set("n_actions", [2], "push left or right"),
            expect.in_set("max_episode_steps", [500], "v1's time limit: returns are comparable to the 475 threshold"),
            expect.between("initial_state_abs_max", 0.0, 0.05, "CartPole resets uniformly in +-0.05"),
            Expectation("expect_column_values_to_be_unique", {"column": "seed"}, "each episode seed once"),
            Expectation(
                "expect_column_distinct_values_to_contain_set",
                {"column": "split", "value_set": list(SPLITS)},
                "training envs, validation and test episodes",
            ),
            expect.no_leak("an evaluation seed must not be a training seed"),
        ]

    def load(self, data_dir: Path) -> EnvData:
        info = read_info(data_dir)
        m = read_manifest(data_dir)
        seeds = {s: m.loc[m["split"] == s, "seed"].astype(int).tolist() for s in SPLITS}
        return EnvData(info=info, seeds=seeds)

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: GameControlConfig, info: dict[str, Any]) -> nn.Module:
        return ActorCritic(info["observation"], info["n_actions"], cfg.hidden, cfg.epochs)

    def training(self, model: ActorCritic, data: EnvData, cfg: GameControlConfig) -> Recipe:
        """PPO (clipped objective, GAE, value bootstrap on time-limit truncation).

        ``batches`` collects a rollout of ``n_steps`` per training env, then yields its
        ``ppo_epochs`` shuffled passes of minibatches; the engine runs one update per minibatch.
        The envs (physics, step counts, RNGs) are checkpointed with the best weights so far.
        """
        info = data.info
        device = engine.pick_device()
        rollout = len(data.seeds["train"]) * cfg.n_steps
        mb = min(cfg.batch_size, rollout)
        venv = VecEnv(info["env_id"], [s + 7919 * cfg.seed for s in data.seeds["train"]], info["observation"])
        run = PPORun(venv)

        def batches(gen: torch.Generator):
            venv.finished_returns = []
            while True:
                batch = self._collect(model, venv, venv.obs(), cfg, device)
                del batch["next_obs"]
                run.env_steps += rollout
                new = rollout
                for _ in range(cfg.ppo_epochs):
                    order = torch.randperm(rollout, generator=gen)
                    for start in range(0, rollout - mb + 1, mb):
                        idx = order[start : start + mb]
                        yield {k: v[idx] for k, v in batch.items()} | {"new_env_steps": new}
                        new = 0

        def step(b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            loss, pg, vf, ent = self._ppo_loss(model, b, cfg)
            return {"loss": loss, "policy_loss": pg, "value_loss": vf, "entropy": ent}

        def end_epoch(epoch: int, metrics: dict[str, float]) -> None:
            finished = venv.finished_returns
            train_return = float(np.mean(finished)) if finished else float(np.mean(venv.episode_return))
            val = metrics["val_mean_return"]
            metrics |= {"train_return": train_return, "env_steps": float(run.env_steps)}
            if epoch < len(model.history):
                model.history[epoch] = torch.tensor([train_return, val, metrics["train_loss"], float(run.env_steps)])
            if val >= run.best_value:
                run.best_value = val
                run.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

        def keep_best() -> None:
            if cfg.keep_best and run.best_state is not None:
                history = model.history.clone()
                model.load_state_dict(run.best_state)
                model.history.copy_(history)  # the curve of the whole run, not of the best epoch

        return Recipe(
            batches,
            step,
            cfg.rollouts_per_epoch * cfg.ppo_epochs * (rollout // mb),
            optimizers=lambda m: torch.optim.Adam(m.parameters(), lr=cfg.lr, eps=1e-5),
            schedule=engine.lambda_schedule(lambda s, total: max(1.0 - s / total, 0.0)),  # linear to 0
            validate=lambda: {"mean_return": float(self._returns(model, info, data.seeds["val"]).mean())},
            end_epoch=end_epoch,
            finish=keep_best,
            state=run,
            samples=lambda b: b["new_env_steps"],  # throughput in environment steps
            # a 64-unit MLP per env step: thread hand-offs cost more than they save
            num_threads=1 if info["observation"] == "state" else 0,
        )

    @torch.no_grad()
    def _collect(self, model: ActorCritic, venv: VecEnv, obs: np.ndarray, cfg: GameControlConfig, device):
        """One rollout of ``n_steps`` per env -> flat tensors with advantages and returns."""
        n_envs = len(venv.envs)
        obs_buf, act_buf, logp_buf, val_buf, rew_buf, done_buf = [], [], [], [], [], []
        for _ in range(cfg.n_steps):
            x = torch.from_numpy(obs).to(device)
            logits, values = model(x)
            dist = torch.distributions.Categorical(logits=logits)
            actions = dist.sample()
            next_obs, rewards, dones, truncated = venv.step(actions.cpu().numpy())
            if truncated:  # time limit, not failure: bootstrap the value of the final state
                idx = sorted(truncated)
                _, v_final = model(torch.from_numpy(np.stack([truncated[i] for i in idx])).to(device))
                for j, i in enumerate(idx):
                    rewards[i] += cfg.gamma * float(v_final[j])
            obs_buf.append(x)
            act_buf.append(actions)
            logp_buf.append(dist.log_prob(actions))
            val_buf.append(values)
            rew_buf.append(torch.from_numpy(rewards).to(device))
            done_buf.append(torch.from_numpy(dones.astype(np.float32)).to(device))
            obs = next_obs
        _, last_value = model(torch.from_numpy(obs).to(device))
        values = torch.stack(val_buf)
        adv = torch.zeros_like(values)
        gae = torch.zeros(n_envs, device=device)
        for t in reversed(range(cfg.n_steps)):
            next_v = last_value if t == cfg.n_steps - 1 else values[t + 1]
            nonterminal = 1.0 - done_buf[t]
            delta = rew_buf[t] + cfg.gamma * next_v * nonterminal - values[t]
            gae = delta + cfg.gamma * cfg.gae_lambda * nonterminal * gae
            adv[t] = gae
        flat = lambda t: t.reshape(-1, *t.shape[2:])  # noqa: E731
        return {
            "obs": flat(torch.stack(obs_buf)),
            "actions": flat(torch.stack(act_buf)),
            "logp": flat(torch.stack(logp_buf)),
            "adv": flat(adv),
            "returns": flat(adv + values),
            "next_obs": obs,
        }

    @staticmethod
    def _ppo_loss(model: ActorCritic, b: dict[str, torch.Tensor], cfg: GameControlConfig):
        logits, values = model(b["obs"])
        logp_all = F.log_softmax(logits, dim=-1)
        logp = logp_all.gather(1, b["actions"][:, None]).squeeze(1)
        entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
        adv = (b["adv"] - b["adv"].mean()) / (b["adv"].std() + 1e-8) if len(b["adv"]) > 1 else b["adv"]
        ratio = (logp - b["logp"]).exp()
        pg = -torch.min(ratio * adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv).mean()
        vf = F.mse_loss(values, b["returns"])
        loss = pg + cfg.vf_coef * vf - cfg.ent_coef * entropy
        return loss, pg.detach(), vf.detach(), entropy.detach()

    @staticmethod
    @torch.no_grad()
    def _greedy(model: ActorCritic, obs: np.ndarray) -> np.ndarray:
        device = next(model.parameters()).device
        logits, _ = model(torch.from_numpy(np.ascontiguousarray(obs)).to(device))
        return logits.argmax(-1).cpu().numpy()

    def _returns(self, model: ActorCritic, info: dict[str, Any], seeds: list[int]) -> np.ndarray:
        returns, _ = run_episodes(info["env_id"], seeds, info["observation"], lambda o, _: self._greedy(model, o))
        return returns

    @staticmethod
    def _summary(returns: np.ndarray, lengths: np.ndarray, threshold: float) -> dict[str, float]:
        return {
            "mean_return": float(returns.mean()),
            "std_return": float(returns.std()),
            "min_return": float(returns.min()),
            "mean_episode_length": float(lengths.mean()),
            "solved_fraction": float((returns >= threshold).mean()),  # episodes at or above 475
        }

    def evaluate(self, model: nn.Module, data: EnvData, split: str = "test") -> dict[str, float]:
        """Greedy (argmax) policy, one episode per fixed seed of ``split``."""
        model.eval()
        returns, lengths = run_episodes(
            data.info["env_id"], data.seeds[split], data.info["observation"], lambda o, _: self._greedy(model, o)
        )
        return self._summary(returns, lengths, data.info["reward_threshold"])

    def baseline(self, data: EnvData, split: str = "test") -> dict[str, float]:
        """A uniformly random policy on the same fixed-seed episodes."""
        rng = np.random.default_rng(0)
        returns, lengths = run_episodes(
            data.info["env_id"],
            data.seeds[split],
            data.info["observation"],
            lambda o, _: rng.integers(0, data.info["n_actions"], len(o)),
        )
        return self._summary(returns, lengths, data.info["reward_threshold"])

    def examples(self, model: nn.Module, data: EnvData) -> dict[str, Any]:
        plt = _pyplot()
        info, seeds = data.info, data.seeds["test"]
        model_ret, _ = run_episodes(info["env_id"], seeds, info["observation"], lambda o, _: self._greedy(model, o))
        rng = np.random.default_rng(0)
        rand_ret, _ = run_episodes(
            info["env_id"], seeds, info["observation"], lambda o, _: rng.integers(0, info["n_actions"], len(o))
        )
        files: dict[str, Any] = {}
        hist = model.history.cpu().numpy()
        hist = hist[~np.isnan(hist[:, 0])]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if len(hist):
            ax.plot(hist[:, 3], hist[:, 0], "o-", label="training episodes (sampled actions)")
            ax.plot(hist[:, 3], hist[:, 1], "s-", label="validation episodes (greedy)")
        ax.axhline(info["reward_threshold"], color="gray", ls="--", label=f"target {info['reward_threshold']:g}")
        ax.axhline(rand_ret.mean(), color="red", ls=":", label=f"random policy {rand_ret.mean():.1f}")
        ax.set(
            xlabel="environment steps", ylabel="mean episode return", title=f"{info['env_id']} ({info['observation']})"
        )
        ax.legend(fontsize=7)
        fig.tight_layout()
        files["return_curve.png"] = fig
        fig, ax = plt.subplots(figsize=(7, 3.2))
        pos = np.arange(len(seeds))
        ax.bar(pos - 0.2, model_ret, 0.4, label=f"PPO (mean {model_ret.mean():.1f})")
        ax.bar(pos + 0.2, rand_ret, 0.4, label=f"random (mean {rand_ret.mean():.1f})", color="tab:red")
        ax.set(xlabel="test episode seed", ylabel="return", xticks=pos)
        ax.set_xticklabels([str(s) for s in seeds], rotation=90, fontsize=6)
        ax.legend(fontsize=7)
        fig.tight_layout()
        files["evaluation_returns.png"] = fig
        lines = ["| seed | PPO return | random return |", "|---|---|---|"]
        lines += [f"| {s} | {m:.0f} | {r:.0f} |" for s, m, r in zip(seeds, model_ret, rand_ret, strict=True)]
        files["evaluation_episodes.md"] = "\n".join(lines) + "\n"
        # what the policy sees: frames of one test episode (pixels) or the state trajectory
        env = gym.make(info["env_id"])
        state, frames, states = env.reset(seed=seeds[0])[0], [], []
        history = np.repeat(state[None], max(LAGS) + 1, axis=0)
        for _ in range(info["max_episode_steps"]):
            states.append(state)
            ob = pixel_observation(history[None])[0]
            frames.append(ob)
            obs = ob if info["observation"] == "pixels" else state.astype(np.float32)
            state, _, term, trunc, _ = env.step(int(self._greedy(model, obs[None])[0]))
            history = np.concatenate([state[None], history[:-1]])
            if term or trunc:
                break
        pick = np.linspace(0, len(frames) - 1, 8).round().astype(int)
        fig, axes = plt.subplots(1, 8, figsize=(12, 1.9))
        for ax, i in zip(axes, pick, strict=True):
            ax.imshow(frames[i])
            ax.set_title(f"t={i} th={states[i][2]:+.2f}", fontsize=7)
            ax.axis("off")
        fig.suptitle(f"test episode seed {seeds[0]} under the policy (R: now, G: t-2, B: t-4)", fontsize=8)
        fig.tight_layout()
        files["episode_frames.png"] = fig
        return files

    # -- serving ----------------------------------------------------------------
    def request_examples(self, data: EnvData, n: int) -> list[Request]:
        """Initial observations of the first ``n`` test episodes."""
        env = gym.make(data.info["env_id"])
        out = []
        for seed in (data.seeds["test"] * n)[:n]:
            state = env.reset(seed=seed)[0]
            if data.info["observation"] == "pixels":
                frame = pixel_observation(np.repeat(state[None, None], max(LAGS) + 1, axis=1))[0]
                out.append({"array": frame.tolist()})
            else:
                out.append({"array": [round(float(v), 6) for v in state]})
        return out

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return [
            ({"array": [0.0, 0.1, 0.2]}, 422, "shape"),
            ({"array": [0.0, "left", 0.0, 0.0]}, 422, "numbers"),
            ({"array": [[0.0, 0.1], [0.2]]}, 422, "rectangular"),
            ({"text": "push left"}, 422, "not used"),
        ]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        return [parse_observation(request.get("array"), loaded.info)]

    def forward(self, loaded: LoadedModel, batch: np.ndarray) -> np.ndarray:
        """-> (N, n_actions + 1): action probabilities, then the critic's value."""
        model = loaded.module
        device = next(model.parameters()).device
        with torch.no_grad():
            logits, values = model(torch.from_numpy(np.ascontiguousarray(batch)).to(device))
        return torch.cat([torch.softmax(logits.float(), -1), values.float()[:, None]], 1).cpu().numpy()

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        names = loaded.info["action_names"]
        probs, value = output[: len(names)], output[len(names)]
        action = int(probs.argmax())
        return {
            "action": action,
            "action_name": names[action],
            "probabilities": {n: round(float(p), 6) for n, p in zip(names, probs, strict=True)},
            "value": round(float(value), 4),
        }


def parse_observation(values: Any, info: dict[str, Any]) -> np.ndarray:
    """A JSON observation -> the model's array, or InvalidInput(422) naming the problem."""
    want = tuple(info["obs_shape"])
    what = "4 numbers (cart position, velocity, pole angle, angular velocity)"
    if info["observation"] == "pixels":
        what = f"a {want[0]}x{want[1]}x3 frame of numbers 0-255"
    if values is None:
        raise InvalidInput(f"field 'array' is missing: send the observation as {what}", status=422)
    try:
        with np.errstate(all="ignore"):
            arr = np.array(values, dtype=object)
    except ValueError:
        arr = None
    if arr is None or arr.dtype != object and arr.ndim == 0 or _ragged(arr):
        raise InvalidInput(f"array must be a rectangular nested list: send {what}", status=422)
    if arr.shape != want:
        raise InvalidInput(f"observation has shape {list(arr.shape)}, expected {list(want)}: send {what}", status=422)
    flat = arr.reshape(-1)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in flat):
        raise InvalidInput(f"observation must contain only numbers: send {what}", status=422)
    x = flat.astype(np.float64).reshape(want)
    if not np.isfinite(x).all():
        raise InvalidInput("observation contains NaN or infinite values", status=422)
    if info["observation"] == "pixels":
        if x.min() < 0 or x.max() > 255:
            raise InvalidInput(f"frame values must lie in 0-255, got {x.min():g} to {x.max():g}", status=422)
        return np.round(x).astype(np.uint8)
    return x.astype(np.float32)


def _ragged(arr: np.ndarray) -> bool:
    """True when a nested list did not form a rectangular array (object cells that are lists)."""
    return any(isinstance(v, list | tuple) for v in arr.reshape(-1))
