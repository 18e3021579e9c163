"""Game control (seed example 8): PPO on Gymnasium CartPole-v1, from state or from 64x64x3 frames.

``env.py`` holds the environment side (vectorised stepping, the numpy renderer),
``model.py`` the actor-critic networks, ``task.py`` the task and its PPO loop.
"""

from tasks_lib.tasks.game_control.env import render_frames, run_episodes
from tasks_lib.tasks.game_control.model import ActorCritic
from tasks_lib.tasks.game_control.task import GameControl

__all__ = ["ActorCritic", "GameControl", "render_frames", "run_episodes"]
