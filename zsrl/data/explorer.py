"""The online explorer behind the closed-loop collectors: an agent rewarded by itself, whose experience
becomes a dataset.

ExORL's datasets (reference: ref-exorl) are what URLB's unsupervised agents saw while training on an
intrinsic reward only. This module is the part those agents share, written small for a CPU; each
collector supplies its :class:`IntrinsicReward` (:mod:`zsrl.data.rnd`'s novelty,
:mod:`zsrl.data.diayn`'s skill discriminability):

- ``envs`` copies of the domain (:class:`~zsrl.envs.BatchSim`) step in lock-step and share one batched
  actor forward pass; episodes start from ``domain.sample_start`` and run in waves of ``envs``;
- after ``random_steps`` transitions of uniform random actions, every ``update_every`` vector steps
  the agent does ``updates`` gradient steps on replay batches, an update-to-data ratio of
  ``updates / (envs * update_every)``; each step trains the intrinsic reward's own networks first,
  then the actor-critic on the rewards they give;
- the actor-critic is TD3-like (twin critics, target policy smoothing) and acts with Gaussian noise,
  correlated in time and of a different scale in each env (:class:`Exploration`);
- an agent with skills conditions its actor and critics on a one-hot skill, drawn uniformly for each
  env every ``skill_steps`` steps and kept with each transition in the replay;
- every network sees observations standardised by running statistics;
- torch runs on ``threads`` CPU threads inside a forked RNG, so a seed and a scale fix the bytes.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from zsrl.data.dataset import Dataset
from zsrl.envs import BatchSim, Domain
from zsrl.io import atomic_write_bytes
from zsrl.nets import mlp

Part = nn.Module | torch.optim.Optimizer


@dataclass(frozen=True)
class ExplorerConfig:
    """Hyperparameters of an explorer: one set per scale, recorded in the dataset's meta."""

    episodes: int = 100  # default number of episodes (100 x 1000 steps = 100k transitions)
    envs: int = 10  # environments stepped in lock-step (episodes run in waves of this many)
    random_steps: int = 5_000  # the first transitions take uniform random actions
    update_every: int = 1  # vector steps (of ``envs`` transitions each) between rounds of updates
    updates: int = 5  # gradient steps per round
    batch_size: int = 256
    buffer_size: int = 100_000  # replay of the latest transitions, for every network
    hidden: int = 256  # width of the two hidden layers of every network
    lr: float = 3e-4  # Adam, for every network
    discount: float = 0.99
    tau: float = 0.01  # soft-update rate of the target actor and critics
    noise: float = 1.0  # largest std of the Gaussian noise added to the actor's actions
    noise_min: float | None = 0.1  # env j's std is geometric from noise_min to noise (None: noise)
    noise_correlation: float = 0.95  # AR(1) coefficient of that noise across steps (0: white)
    target_noise: float = 0.2  # TD3 target-policy smoothing noise, clipped at target_noise_clip
    target_noise_clip: float = 0.5
    threads: int = 1  # torch CPU threads; part of the scale because results depend on it

    @property
    def utd(self) -> float:
        """Gradient updates per environment transition."""
        return self.updates / (self.envs * self.update_every)


# Every explorer's quick scale, for tests: 4 episodes (4k maze transitions) in seconds.
QUICK_SETTINGS: dict[str, Any] = dict(
    episodes=4, envs=4, random_steps=1_000, updates=1, batch_size=64, hidden=64
)


class RunningMoments:
    """Running mean and variance of a stream of batches (the parallel-variance merge)."""

    def __init__(self, shape: tuple[int, ...] = ()):
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = 1e-4  # a tiny prior count: the first batch sets the statistics

    def update(self, x: np.ndarray) -> None:
        """Merge a batch x (n, *shape)."""
        n, mean, var = len(x), x.mean(axis=0), x.var(axis=0)
        delta, total = mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var) + 1e-8


class Replay:
    """A ring buffer of the latest ``capacity`` transitions (obs, action, next obs[, skill])."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, skills: bool = False):
        self.arrays = {
            "obs": np.zeros((capacity, obs_dim), np.float32),  # capacity x O
            "action": np.zeros((capacity, action_dim), np.float32),  # capacity x A
            "next_obs": np.zeros((capacity, obs_dim), np.float32),  # capacity x O
        }
        if skills:
            self.arrays["skill"] = np.zeros(capacity, np.int64)  # capacity
        self.capacity, self.size, self.cursor = capacity, 0, 0

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        next_obs: np.ndarray,
        skill: np.ndarray | None = None,
    ) -> None:
        """Add n transitions (obs (n, O), action (n, A), next obs (n, O), skill (n,) if kept)."""
        rows = {"obs": obs, "action": action, "next_obs": next_obs, "skill": skill}
        index = (self.cursor + np.arange(len(obs))) % self.capacity  # n
        for name, array in self.arrays.items():
            array[index] = rows[name]
        self.cursor = (self.cursor + len(obs)) % self.capacity
        self.size = min(self.size + len(obs), self.capacity)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...]:
        """n transitions drawn uniformly with replacement: (obs, action, next obs[, skill])."""
        index = rng.integers(0, self.size, size=n)  # n
        return tuple(torch.from_numpy(a[index]) for a in self.arrays.values())


class IntrinsicReward(Protocol):
    """What an explorer is rewarded by: networks of its own, trained on the same replay batches."""

    def update(self, s_next: torch.Tensor, skill: torch.Tensor | None) -> torch.Tensor:
        """One training step on a batch of standardised next observations (batch, O) and their
        skills (batch,) where the agent has skills; return the batch's rewards (batch,), no grad."""
        ...

    def reward(self, s_next: torch.Tensor, skill: torch.Tensor | None) -> np.ndarray:
        """Rewards (n,) of standardised next observations (n, O), without training."""
        ...

    def parts(self) -> dict[str, Part]:
        """Its networks and optimisers by name (what a checkpoint keeps)."""
        ...

    def moments(self) -> dict[str, RunningMoments]:
        """Its running statistics by name (what a checkpoint keeps)."""
        ...


class Explorer:
    """A deterministic actor and twin critics trained on an intrinsic reward only.

    Subclasses build ``intrinsic`` after calling this constructor (the actor and critics draw their
    initial weights first), and name their settings' key in the dataset's meta (``name``). With
    ``skills`` > 0 the actor and critics also see a one-hot skill, fresh every ``skill_steps`` steps.
    """

    name: ClassVar[str]  # the key of the settings in the dataset's meta
    reward_label: ClassVar[str] = "reward"  # what the progress bar calls the intrinsic reward
    intrinsic: IntrinsicReward

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        cfg: ExplorerConfig,
        skills: int = 0,
        skill_steps: int | None = None,
    ):
        self.cfg, self.skills, self.skill_steps = cfg, skills, skill_steps
        inp = obs_dim + skills
        self.actor = mlp(inp, cfg.hidden, 2, action_dim)
        self.critics = nn.ModuleList([mlp(inp + action_dim, cfg.hidden, 2, 1) for _ in range(2)])
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr)
        self.obs_moments = RunningMoments((obs_dim,))

    def settings(self) -> dict[str, Any]:
        """The hyperparameters as the dataset's meta records them."""
        return {**asdict(self.cfg), "utd": self.cfg.utd}

    def parts(self) -> dict[str, Part]:
        """Every network and optimiser by name (what a checkpoint keeps)."""
        names = ("actor", "critics", "actor_target", "critics_target", "actor_opt", "critic_opt")
        return {**{name: getattr(self, name) for name in names}, **self.intrinsic.parts()}

    def moments(self) -> dict[str, RunningMoments]:
        return {"obs": self.obs_moments, **self.intrinsic.moments()}

    def standardize(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations (n, O) centred and scaled by the running statistics of all seen so far.

        Not clipped (unlike RND on Atari): while the agent has only seen the first room, the other
        rooms lie 5 to 10 standard deviations away, and clipping made them all look alike.
        """
        mean = torch.as_tensor(self.obs_moments.mean, dtype=torch.float32)  # O
        std = torch.as_tensor(self.obs_moments.std, dtype=torch.float32)  # O
        return (obs - mean) / std  # n x O

    def condition(self, s: torch.Tensor, skill: torch.Tensor | None) -> torch.Tensor:
        """The actor's and critics' input: s (n, O), with the one-hot skill (n,) where there is one."""
        if skill is None:
            return s
        return torch.cat([s, F.one_hot(skill, self.skills).to(s.dtype)], dim=-1)  # n x (O + K)

    def policy(self, x: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Deterministic actions in [-1, 1] for conditioned inputs x (n, O [+ K])."""
        return (self.actor_target if target else self.actor)(x).tanh()  # n x A

    def q_values(self, x: torch.Tensor, a: torch.Tensor, target: bool = False) -> torch.Tensor:
        critics = self.critics_target if target else self.critics
        xa = torch.cat([x, a], dim=-1)  # n x (O [+ K] + A)
        return torch.cat([q(xa) for q in critics], dim=-1)  # n x 2

    def intrinsic_reward(self, obs: np.ndarray, skill: np.ndarray | None = None) -> np.ndarray:
        """The intrinsic reward of raw next observations (n, O) (and skills (n,)): (n,)."""
        with torch.no_grad():
            s = self.standardize(torch.from_numpy(obs))  # n x O
            return self.intrinsic.reward(s, None if skill is None else torch.from_numpy(skill))

    @torch.no_grad()
    def act(self, obs: np.ndarray, skill: np.ndarray | None = None) -> np.ndarray:
        """The actor's actions for raw observations (n, O) (and skills (n,)): (n, A)."""
        s = self.standardize(torch.from_numpy(obs))  # n x O
        x = self.condition(s, None if skill is None else torch.from_numpy(skill))  # n x (O [+ K])
        return self.policy(x).numpy()

    def update(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        next_obs: torch.Tensor,
        skill: torch.Tensor | None = None,
    ) -> None:
        """One gradient step of the intrinsic reward's networks, the critics and the actor on a
        replay batch."""
        cfg = self.cfg
        s, s_next = self.standardize(obs), self.standardize(next_obs)  # batch x O
        reward = self.intrinsic.update(s_next, skill)  # batch
        x, x_next = self.condition(s, skill), self.condition(s_next, skill)  # batch x (O [+ K])
        with torch.no_grad():
            noise = torch.randn_like(action) * cfg.target_noise  # batch x A
            noise = noise.clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
            next_action = (self.policy(x_next, target=True) + noise).clamp(-1, 1)  # batch x A
            next_q = self.q_values(x_next, next_action, target=True).min(dim=-1).values  # batch
            target = reward + cfg.discount * next_q  # batch: no terminals, time limits only
        q = self.q_values(x, action)  # batch x 2
        critic_loss = F.mse_loss(q, target[:, None].expand_as(q))
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        actor_loss = -self.q_values(x, self.policy(x))[:, 0].mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            pairs = [(self.actor, self.actor_target), (self.critics, self.critics_target)]
            for online, target_net in pairs:
                for p, p_target in zip(online.parameters(), target_net.parameters(), strict=True):
                    p_target.lerp_(p, cfg.tau)


class Exploration:
    """Behaviour noise for n envs: Gaussian, correlated in time, with a different scale per env.

    White noise averages out within the mass's 15-step velocity time constant, so the noise is AR(1)
    in time. Env j's std is geometric from ``noise_min`` to ``noise`` (a spread of behaviours, as in
    Ape-X): low-noise envs follow the actor towards novelty, high-noise ones wander off the dead ends
    (wall corners) that a deterministic actor pushing towards novelty walks into.
    """

    def __init__(self, cfg: ExplorerConfig, n: int, action_dim: int, rng: np.random.Generator):
        self.rho, self.rng = cfg.noise_correlation, rng
        self.scale = np.geomspace(cfg.noise_min or cfg.noise, cfg.noise, n)[:, None]  # n x 1
        self.noise = self.scale * rng.standard_normal((n, action_dim))  # n x A

    def __call__(self, policy_action: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1] (n, A) from the actor's actions (n, A)."""
        fresh = self.scale * self.rng.standard_normal(policy_action.shape)  # n x A
        self.noise = self.rho * self.noise + np.sqrt(1 - self.rho**2) * fresh  # std stays scale
        return np.clip(policy_action + self.noise, -1.0, 1.0)  # n x A


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on n CPU threads, then restore the previous count.

    Small networks gain nothing from more threads, and results depend on the thread count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def explore(
    domain: Domain,
    episodes: int,
    episode_steps: int,
    seed: int,
    cfg: ExplorerConfig,
    agent_class: type[Explorer],
    progress: bool = True,
    desc: str | None = None,
    checkpoint: Path | None = None,
) -> tuple[Dataset, Explorer]:
    """Run an ``agent_class(obs_dim, action_dim, cfg)`` explorer for ``episodes`` episodes; return its
    transitions and the trained agent.

    Deterministic for a seed and a config: numpy draws starts, random actions, noise, skills and
    replay indices from one generator, and torch (initialisation, target noise) runs in a forked RNG
    seeded the same way, on ``cfg.threads`` threads.

    The dataset's meta holds the settings (under ``agent_class.name``) and, for an agent with skills,
    ``skills``: ``steps`` and ``table`` (episodes x segments), the skill each episode followed in each
    segment of ``steps`` steps.

    With ``checkpoint``, the whole state (agent, optimisers, replay, statistics, both RNGs and the
    episodes so far) is written there atomically after every wave of ``cfg.envs`` episodes, and a run
    that finds a checkpoint of the same exploration continues from it: an interrupted long run loses
    at most one wave, and its result is bitwise the uninterrupted one. The caller removes the file
    once the dataset is safely written (:func:`zsrl.data.load_or_collect` does).
    """
    E, T = episodes, episode_steps
    with torch_threads(cfg.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        agent = agent_class(domain.obs_dim, domain.action_dim, cfg)  # the seed's first draws
        K = agent.skills
        state = _Progress(
            rng=np.random.default_rng(seed),
            agent=agent,
            replay=Replay(min(cfg.buffer_size, E * T), domain.obs_dim, domain.action_dim, K > 0),
            physics=np.empty((E, T + 1, BatchSim(domain, 0).state_size)),
            actions=np.empty((E, T, domain.action_dim), np.float32),
            skills=np.zeros((E, -(-T // (agent.skill_steps or T)) if K else 0), np.int64),
        )
        identity = {
            "domain": domain.name,
            "episodes": E,
            "episode_steps": T,
            "seed": seed,
            **asdict(cfg),
        }
        if checkpoint is not None and Path(checkpoint).exists():
            _load_progress(Path(checkpoint), identity, state)
        bar = tqdm(
            total=E * T,
            initial=state.seen,
            desc=desc or agent_class.name,
            unit="step",
            disable=not progress,
        )
        for lo in range(state.next_episode, E, cfg.envs):
            hi = min(lo + cfg.envs, E)
            _wave(domain, state, lo, hi, bar)
            state.next_episode = hi
            if checkpoint is not None and hi < E:
                _save_progress(Path(checkpoint), identity, state)
        bar.close()
    return _dataset(domain, state), agent


@dataclass
class _Progress:
    """Everything an exploration carries from one wave of episodes to the next."""

    rng: np.random.Generator
    agent: Explorer
    replay: Replay
    physics: np.ndarray  # episodes x (steps + 1) x P
    actions: np.ndarray  # episodes x steps x A
    skills: np.ndarray  # episodes x segments (no columns for an agent without skills)
    next_episode: int = 0
    seen: int = 0  # transitions so far
    vector_steps: int = 0


def _save_progress(path: Path, identity: dict, state: _Progress) -> None:
    """Write the exploration's state atomically (a dict of tensors and numbers; no pickled objects)."""
    done = state.next_episode
    agent, replay = state.agent, state.replay
    moments = {
        name: {
            "mean": torch.from_numpy(np.asarray(m.mean)),
            "var": torch.from_numpy(np.asarray(m.var)),
            "count": float(m.count),
        }
        for name, m in agent.moments().items()
    }
    payload = {
        "identity": identity,
        "next_episode": done,
        "seen": state.seen,
        "vector_steps": state.vector_steps,
        "physics": torch.from_numpy(state.physics[:done].copy()),
        "actions": torch.from_numpy(state.actions[:done].copy()),
        "networks": {name: part.state_dict() for name, part in agent.parts().items()},
        "moments": moments,
        "replay": {
            **{name: torch.from_numpy(array) for name, array in replay.arrays.items()},
            "size": replay.size,
            "cursor": replay.cursor,
        },
        # PCG64's 128-bit integers as strings: the weights-only loader needs no arbitrary pickles
        "numpy_rng": json.dumps(state.rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
    }
    if agent.skills:
        payload["skills"] = torch.from_numpy(state.skills[:done].copy())
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _load_progress(path: Path, identity: dict, state: _Progress) -> None:
    """Restore ``state`` in place from a checkpoint of the same exploration, or raise naming the file."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload["identity"] != identity:
        raise ValueError(
            f"exploration checkpoint {path} belongs to another exploration "
            f"({payload['identity']}, not {identity}); remove it to start afresh"
        )
    done = payload["next_episode"]
    state.next_episode, state.seen = done, payload["seen"]
    state.vector_steps = payload["vector_steps"]
    state.physics[:done] = payload["physics"].numpy()
    state.actions[:done] = payload["actions"].numpy()
    if state.agent.skills:
        state.skills[:done] = payload["skills"].numpy()
    for name, part in state.agent.parts().items():
        part.load_state_dict(payload["networks"][name])
    for name, m in state.agent.moments().items():
        saved = payload["moments"][name]
        m.mean, m.var, m.count = saved["mean"].numpy(), saved["var"].numpy(), saved["count"]
    replay = payload["replay"]
    for name, array in state.replay.arrays.items():
        array[:] = replay[name].numpy()
    state.replay.size, state.replay.cursor = replay["size"], replay["cursor"]
    state.rng.bit_generator.state = json.loads(payload["numpy_rng"])
    torch.set_rng_state(payload["torch_rng"])


def _wave(domain: Domain, state: _Progress, lo: int, hi: int, bar: tqdm) -> None:
    """Run episodes lo to hi (one env each) from start to end, learning as the agent goes."""
    agent, cfg, rng, replay = state.agent, state.agent.cfg, state.rng, state.replay
    physics, actions, T, A = state.physics, state.actions, state.actions.shape[1], domain.action_dim
    K, every = agent.skills, agent.skill_steps or T
    sim = BatchSim(domain, hi - lo)
    sim.set_states(domain.sample_start(rng, hi - lo))
    physics[lo:hi, 0] = sim.states()
    obs = domain.observe(physics[lo:hi, 0])  # n x O
    agent.obs_moments.update(obs)
    behaviour = Exploration(cfg, hi - lo, A, rng)
    skill = None
    for t in range(T):
        if K and t % every == 0:  # a fresh skill for each env, uniform (URLB's DIAYN)
            skill = rng.integers(K, size=hi - lo)  # n
            state.skills[lo:hi, t // every] = skill
        if state.seen < cfg.random_steps:
            action = rng.uniform(-1.0, 1.0, size=(hi - lo, A))  # n x A
        else:
            action = behaviour(agent.act(obs, skill))  # n x A
        action = action.astype(np.float32)  # stored exactly as stepped
        physics[lo:hi, t + 1] = sim.step(action.astype(np.float64))
        actions[lo:hi, t] = action
        next_obs = domain.observe(physics[lo:hi, t + 1])  # n x O
        replay.add(obs, action, next_obs, skill)
        agent.obs_moments.update(next_obs)
        obs, state.seen, state.vector_steps = next_obs, state.seen + hi - lo, state.vector_steps + 1
        if state.seen >= cfg.random_steps and state.vector_steps % cfg.update_every == 0:
            for _ in range(cfg.updates):
                agent.update(*replay.sample(rng, cfg.batch_size))
        bar.update(hi - lo)
    bar.set_postfix({agent.reward_label: f"{agent.intrinsic_reward(obs, skill).mean():.3g}"})


def _dataset(domain: Domain, state: _Progress) -> Dataset:
    """The transitions of a finished exploration, with the agent's settings (and skills) as meta."""
    agent, (E, T, A) = state.agent, state.actions.shape
    flat_physics = state.physics[:, :-1].reshape(E * T, -1)
    flat_next = state.physics[:, 1:].reshape(E * T, -1)
    meta: dict[str, Any] = {agent.name: agent.settings()}
    if agent.skills:
        meta["skills"] = {"steps": agent.skill_steps or T, "table": state.skills.tolist()}
    return Dataset(
        observation=domain.observe(flat_physics),
        action=state.actions.reshape(E * T, A),
        next_observation=domain.observe(flat_next),
        physics=flat_physics,
        next_physics=flat_next,
        episode=np.repeat(np.arange(E, dtype=np.int32), T),
        meta=meta,
    )
