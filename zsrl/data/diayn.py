"""DIAYN skill discovery: an online agent whose experience becomes a dataset, like ExORL's DIAYN data.

"Diversity is all you need" (Eysenbach et al. 2019) learns skills without a reward: the policy is
conditioned on a skill z, one of K drawn uniformly, and is rewarded for reaching states from which a
discriminator q(z | s') tells its skill apart from the others, r = log q(z | s') − log p(z); the
discriminator is a classifier trained by cross-entropy on the same transitions. The skills spread the
agent over states that are distinguishable, a different coverage from RND's novelty. ExORL's DIAYN
datasets (reference: ref-exorl) are what URLB's DIAYN agent saw while learning skills; as there, the
skill is one-hot, K = 16, a fresh one is drawn every 50 steps (``update_skill_every_step``), the
reward is scaled by 1 (``diayn_scale``) and is the only reward, the discriminator sees the next
observation and is updated on each batch before that batch's rewards are computed, and the behaviour
noise is white Gaussian of std 0.2.

The explorer (batched envs, replay, TD3-like actor-critic, resumable waves) is
:mod:`zsrl.data.explorer`'s; here the actor, critics and discriminator see its standardised
observations. Each transition's skill is in the dataset's meta (``skills``: a table of the skill of
every episode's segments), read back per transition by :func:`transition_skills`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from zsrl.data import explorer
from zsrl.data.dataset import Dataset
from zsrl.data.explorer import QUICK_SETTINGS, Explorer, ExplorerConfig, Part, RunningMoments
from zsrl.nets import mlp


@dataclass(frozen=True)
class DIAYNConfig(ExplorerConfig):
    """Hyperparameters of the DIAYN explorer: one set per scale, recorded in the dataset's meta."""

    noise: float = 0.2  # URLB's behaviour noise: white Gaussian of std 0.2 ...
    noise_min: float | None = None  # ... the same in every env ...
    noise_correlation: float = 0.0  # ... and uncorrelated in time
    skills: int = 16  # K, the number of skills (URLB's skill_dim)
    skill_steps: int = 50  # steps between fresh skills (URLB's update_skill_every_step)
    reward_scale: float = 1.0  # multiplies log q(z | s') − log p(z) (URLB's diayn_scale)

    def __post_init__(self) -> None:
        if self.skills < 2:
            raise ValueError(f"DIAYN needs at least 2 skills, got skills={self.skills}")
        if self.skill_steps < 1:
            raise ValueError(f"skill_steps must be at least 1, got {self.skill_steps}")


SCALES: dict[str, DIAYNConfig] = {
    # 100k transitions, RND's book settings (hidden 256, batch 256, one update per 2 transitions)
    # with URLB's noise and skills. Timed on this project's 2-core CPU (one thread, the cores shared
    # with two training runs) over 100 vector steps of 10 envs with 5 updates each: 0.08 to 0.12 s
    # a vector step on the maze and the walker alike, as RND's book took in the same runs; so 14 to
    # 20 minutes for the 10,000 vector steps (estimated, not run whole). The networks, not the
    # physics, take the time.
    "book": DIAYNConfig(),
    "quick": DIAYNConfig(**QUICK_SETTINGS),
}


def diayn_reward(logits: torch.Tensor, skill: torch.Tensor) -> torch.Tensor:
    """log q(z | s') − log p(z) for the discriminator's logits (n, K) and skills z (n,), with p
    uniform over the K skills: (n,). Zero where the discriminator is at chance, log K at certainty."""
    log_q = logits.log_softmax(dim=-1).gather(-1, skill[:, None])[:, 0]  # n
    return log_q + math.log(logits.shape[-1])  # n


def discriminator_accuracy(logits: torch.Tensor, skill: torch.Tensor) -> float:
    """The share of rows whose most likely skill under the logits (n, K) is their skill (n,)."""
    return float((logits.argmax(dim=-1) == skill).float().mean())


class Discriminator:
    """q(z | s'): a classifier of the skill from the standardised next observation."""

    def __init__(self, obs_dim: int, cfg: DIAYNConfig):
        self.discriminator = mlp(obs_dim, cfg.hidden, 2, cfg.skills)
        self.discriminator_opt = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr)
        self.scale = cfg.reward_scale

    def parts(self) -> dict[str, Part]:
        return {"discriminator": self.discriminator, "discriminator_opt": self.discriminator_opt}

    def moments(self) -> dict[str, RunningMoments]:
        return {}

    @torch.no_grad()
    def reward(self, s_next: torch.Tensor, skill: torch.Tensor | None) -> np.ndarray:
        """The scaled DIAYN reward of standardised next observations (n, O) and skills (n,): (n,)."""
        assert skill is not None
        return (self.scale * diayn_reward(self.discriminator(s_next), skill)).numpy()

    def update(self, s_next: torch.Tensor, skill: torch.Tensor | None) -> torch.Tensor:
        """One cross-entropy step on a batch (batch, O) of the skills (batch,) that led there; the
        rewards are those of the updated discriminator (URLB's order)."""
        assert skill is not None
        loss = F.cross_entropy(self.discriminator(s_next), skill)
        self.discriminator_opt.zero_grad()
        loss.backward()
        self.discriminator_opt.step()
        with torch.no_grad():
            return self.scale * diayn_reward(self.discriminator(s_next), skill)  # batch


class DIAYNAgent(Explorer):
    """The explorer conditioned on a skill and rewarded by the discriminator."""

    name = "diayn"

    def __init__(self, obs_dim: int, action_dim: int, cfg: DIAYNConfig):
        super().__init__(obs_dim, action_dim, cfg, cfg.skills, cfg.skill_steps)
        self.intrinsic: Discriminator = Discriminator(obs_dim, cfg)

    @torch.no_grad()
    def accuracy(self, next_obs: np.ndarray, skill: np.ndarray) -> float:
        """How often the discriminator names the skill (n,) that led to raw next observations (n, O)."""
        logits = self.intrinsic.discriminator(self.standardize(torch.from_numpy(next_obs)))  # n x K
        return discriminator_accuracy(logits, torch.from_numpy(skill))


# Run the DIAYN agent for some episodes; return its transitions and the trained agent
# (deterministic and resumable: :func:`zsrl.data.explorer.explore`).
explore = partial(explorer.explore, agent_class=DIAYNAgent)


def transition_skills(dataset: Dataset) -> np.ndarray:
    """The skill each transition of a DIAYN dataset was collected under: (n,).

    Read from the meta's table (lanes x segments) by each row's episode and step, so it holds for
    subsets too. Where episodes end at terminal states, several run in one lane, and the meta
    gives each episode's lane and first step in it (``lane``, ``start``); else episode e is lane e.
    """
    if "skills" not in dataset.meta:
        raise ValueError(
            f"dataset {dataset.meta.get('name', '')!r} records no skills; only diayn datasets do"
        )
    skills = dataset.meta["skills"]
    table = np.asarray(skills["table"], dtype=np.int64)  # lanes x segments
    lane, step = dataset.episode, dataset.step  # n each
    if "lane" in skills:
        step = np.asarray(skills["start"], dtype=np.int64)[lane] + step  # n: step in the lane
        lane = np.asarray(skills["lane"], dtype=np.int64)[lane]  # n
    return table[lane, step // skills["steps"]]  # n
