"""Random network distillation (RND) exploration: an online agent whose experience becomes a dataset.

ExORL's high-coverage datasets (reference: ref-exorl) are what URLB's RND agent saw while exploring: an
actor-critic trained online on an intrinsic reward only, the error of a predictor network that
regresses a fixed, randomly initialised target network (Burda et al. 2019). States visited often are
predicted well and pay little; novel states pay more, so the policy keeps moving to where it has not
been. The explorer (batched envs, replay, TD3-like actor-critic, behaviour noise, resumable waves) is
:mod:`zsrl.data.explorer`'s; this module adds the RND pair, which sees the explorer's standardised
observations, and a reward that is the prediction error divided by its running standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from zsrl.data import explorer
from zsrl.data.explorer import QUICK_SETTINGS, Explorer, ExplorerConfig, Part, RunningMoments
from zsrl.nets import mlp


@dataclass(frozen=True)
class RNDConfig(ExplorerConfig):
    """Hyperparameters of the RND explorer: one set per scale, recorded in the dataset's meta."""

    rnd_dim: int = 64  # output size of the random target and of the predictor


SCALES: dict[str, RNDConfig] = {
    "book": RNDConfig(),  # 100k maze transitions in about 11 minutes on one CPU core
    "quick": RNDConfig(**QUICK_SETTINGS, rnd_dim=16),
}


# The paper's way: one long exploration, of which the 100k datasets are uniform subsamples.
# ExORL explores for about 10M steps with one environment; on one CPU core this run makes 1M
# transitions in waves of 40 environments, each wave a checkpoint. Ten gradient steps per vector
# step is one update per 4 transitions (URLB's explorers make one per 2): at one per 10 the
# explorer's policy settled in the start room after its first 100k transitions. Cost of the book
# scale on one core beside two other runs: the maze 1 h 59 min (measured, whole), the walker about
# 1 h 45 min (160 transitions/s over its first 39k, extrapolated).
LONG_SCALES: dict[str, RNDConfig] = {
    "book": RNDConfig(episodes=1_000, envs=40, updates=10, buffer_size=1_000_000),
    "quick": SCALES["quick"],
}


def scale_names() -> list[str]:
    return list(SCALES)


def get_scale(name: str) -> RNDConfig:
    if name not in SCALES:
        raise ValueError(f"unknown rnd scale {name!r}; valid scales: {scale_names()}")
    return SCALES[name]


class RND:
    """The RND pair: a fixed random target network and a predictor trained to regress it."""

    def __init__(self, obs_dim: int, cfg: RNDConfig):
        self.rnd_target = mlp(obs_dim, cfg.hidden, 2, cfg.rnd_dim).requires_grad_(False)  # fixed
        self.predictor = mlp(obs_dim, cfg.hidden, 2, cfg.rnd_dim)
        self.predictor_opt = torch.optim.Adam(self.predictor.parameters(), lr=cfg.lr)
        self.reward_moments = RunningMoments()

    def parts(self) -> dict[str, Part]:
        names = ("rnd_target", "predictor", "predictor_opt")
        return {name: getattr(self, name) for name in names}

    def moments(self) -> dict[str, RunningMoments]:
        return {"reward": self.reward_moments}

    def novelty(self, s: torch.Tensor) -> torch.Tensor:
        """RND prediction error of standardised observations s (n, O): (n,)."""
        return (self.predictor(s) - self.rnd_target(s)).pow(2).mean(dim=-1)  # n

    @torch.no_grad()
    def reward(self, s_next: torch.Tensor, skill: torch.Tensor | None = None) -> np.ndarray:
        """Novelty of standardised observations (n, O) divided by the running std of rewards: (n,)."""
        return self.novelty(s_next).numpy() / self.reward_moments.std

    def update(self, s_next: torch.Tensor, skill: torch.Tensor | None = None) -> torch.Tensor:
        """One predictor step on a batch (batch, O); the rewards are the errors before it."""
        error = self.novelty(s_next)  # batch: with gradient, for the predictor
        self.predictor_opt.zero_grad()
        error.mean().backward()
        self.predictor_opt.step()
        with torch.no_grad():
            self.reward_moments.update(error.numpy())
            return error / float(self.reward_moments.std)  # batch


class RNDAgent(Explorer):
    """The explorer rewarded by RND novelty."""

    name = "rnd"
    reward_label = "novelty"

    def __init__(self, obs_dim: int, action_dim: int, cfg: RNDConfig):
        super().__init__(obs_dim, action_dim, cfg)
        self.intrinsic: RND = RND(obs_dim, cfg)

    def settings(self) -> dict[str, Any]:
        """The settings in the order the files written before the explorer was shared hold them
        (``rnd_dim`` after ``hidden``), so that the same run still writes the same bytes."""
        settings = super().settings()
        names = [name for name in settings if name != "rnd_dim"]
        names.insert(names.index("hidden") + 1, "rnd_dim")
        return {name: settings[name] for name in names}


# Run the RND agent for some episodes; return its transitions and the trained agent
# (deterministic and resumable: :func:`zsrl.data.explorer.explore`).
explore = partial(explorer.explore, agent_class=RNDAgent)
