"""Actor-critic networks for PPO: an MLP on the 4 state floats, a small conv net on 64x64x3 frames."""

from __future__ import annotations

import torch
from torch import nn

STATE_SCALE = (2.4, 3.0, 0.21, 3.0)  # rough ranges of cart position, velocity, pole angle, angular velocity


def _init(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Shared-input actor (action logits) and critic (state value).

    ``history`` is a persistent buffer (epochs x 4: train return, val return, loss, env steps)
    so the review artifacts of a saved bundle can draw the return curve.
    """

    def __init__(self, observation: str, n_actions: int, hidden: int, epochs: int):
        super().__init__()
        self.observation = observation
        if observation == "pixels":
            self.body = nn.Sequential(
                _init(nn.Conv2d(3, 16, 8, 4), 2**0.5),  # 64 -> 15
                nn.ReLU(),
                _init(nn.Conv2d(16, 32, 4, 2), 2**0.5),  # 15 -> 6
                nn.ReLU(),
                _init(nn.Conv2d(32, 32, 3, 1), 2**0.5),  # 6 -> 4
                nn.ReLU(),
                nn.Flatten(),
                _init(nn.Linear(32 * 4 * 4, hidden), 2**0.5),
                nn.ReLU(),
            )
            self.actor = _init(nn.Linear(hidden, n_actions), 0.01)
            self.critic = _init(nn.Linear(hidden, 1), 1.0)
        else:
            self.register_buffer("scale", torch.tensor(STATE_SCALE), persistent=False)
            self.body = nn.Identity()
            self.actor = nn.Sequential(
                _init(nn.Linear(4, hidden), 2**0.5),
                nn.Tanh(),
                _init(nn.Linear(hidden, hidden), 2**0.5),
                nn.Tanh(),
                _init(nn.Linear(hidden, n_actions), 0.01),
            )
            self.critic = nn.Sequential(
                _init(nn.Linear(4, hidden), 2**0.5),
                nn.Tanh(),
                _init(nn.Linear(hidden, hidden), 2**0.5),
                nn.Tanh(),
                _init(nn.Linear(hidden, 1), 1.0),
            )
        self.register_buffer("history", torch.full((max(epochs, 1), 4), float("nan")))

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        if self.observation == "pixels":  # uint8 NHWC -> float NCHW in 0-1
            return self.body(obs.permute(0, 3, 1, 2).float() / 255)
        return obs.float() / self.scale

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (action logits (N, A), values (N,))."""
        h = self.features(obs)
        return self.actor(h), self.critic(h).squeeze(-1)
