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

On a domain with terminal states (Gymnasium's Walker2d falls) an episode ends at its first: the
replay marks the transition ``terminal``, the critics do not bootstrap through it, and that env
starts its next episode from the start distribution at the next step. Each env still runs for the
wave's ``episode_steps`` steps, so ``episodes`` counts env runs of that length ("lanes"), a run holds
``episodes x episode_steps`` transitions whatever the terminals, and the episode in progress when
a lane ends is marked ``truncation`` (bootstrapping continues): the time limit for an episode that
began with the lane, the lane's end for one begun after a fall. A domain without terminal states
runs one episode per lane, as before.

An agent trained on a task instead (:class:`~zsrl.data.medium.TaskAgent`, the online single-task
agent of the D4RL-style datasets) sets ``task``: each transition is rewarded as it is collected by
the task's own ``transition_reward`` (Gymnasium's forward reward reads the x position, which the
observations lack), the replay keeps the rewards and the dataset holds them, with ``reward_task``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from zsrl.data.dataset import Dataset
from zsrl.envs import BatchSim, Domain, Task
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


class Batch(NamedTuple):
    """Replay transitions as tensors; the columns a replay does not keep are None."""

    obs: torch.Tensor  # batch x O
    action: torch.Tensor  # batch x A
    next_obs: torch.Tensor  # batch x O
    skill: torch.Tensor | None = None  # batch, int64
    terminal: torch.Tensor | None = None  # batch, bool: the next observation ends its episode
    reward: torch.Tensor | None = None  # batch: the task's reward, for an agent trained on one


class Replay:
    """A ring buffer of the latest ``capacity`` transitions (obs, action, next obs[, skill]
    [, terminal][, reward])."""

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        action_dim: int,
        skills: bool = False,
        terminals: bool = False,
        rewards: bool = False,
    ):
        self.arrays = {
            "obs": np.zeros((capacity, obs_dim), np.float32),  # capacity x O
            "action": np.zeros((capacity, action_dim), np.float32),  # capacity x A
            "next_obs": np.zeros((capacity, obs_dim), np.float32),  # capacity x O
        }
        if skills:
            self.arrays["skill"] = np.zeros(capacity, np.int64)  # capacity
        if terminals:
            self.arrays["terminal"] = np.zeros(capacity, bool)  # capacity
        if rewards:
            self.arrays["reward"] = np.zeros(capacity, np.float32)  # capacity
        self.capacity, self.size, self.cursor = capacity, 0, 0

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        next_obs: np.ndarray,
        skill: np.ndarray | None = None,
        terminal: np.ndarray | None = None,
        reward: np.ndarray | None = None,
    ) -> None:
        """Add n transitions (obs (n, O), action (n, A), next obs (n, O); skill, terminal and
        reward (n,) each, where kept)."""
        rows = {
            "obs": obs,
            "action": action,
            "next_obs": next_obs,
            "skill": skill,
            "terminal": terminal,
            "reward": reward,
        }
        index = (self.cursor + np.arange(len(obs))) % self.capacity  # n
        for name, array in self.arrays.items():
            array[index] = rows[name]
        self.cursor = (self.cursor + len(obs)) % self.capacity
        self.size = min(self.size + len(obs), self.capacity)

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        """n transitions drawn uniformly with replacement."""
        index = rng.integers(0, self.size, size=n)  # n
        return Batch(**{name: torch.from_numpy(a[index]) for name, a in self.arrays.items()})


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


def critic_target(
    reward: torch.Tensor,
    next_q: torch.Tensor,
    discount: float,
    terminal: torch.Tensor | None = None,
) -> torch.Tensor:
    """The critics' regression target r + γ Q'(s', a') (batch,), with nothing after a terminal
    next state (``terminal`` (batch,), bool): there the target is the reward alone. Time limits
    are not terminal, so without ``terminal`` every row bootstraps."""
    if terminal is not None:
        next_q = torch.where(terminal, torch.zeros_like(next_q), next_q)  # batch
    return reward + discount * next_q  # batch


class Explorer:
    """A deterministic actor and twin critics trained on an intrinsic reward, or on a task's.

    Subclasses build ``intrinsic`` after calling this constructor (the actor and critics draw their
    initial weights first), or set ``task`` instead, and name their settings' key in the dataset's
    meta (``name``). With ``skills`` > 0 the actor and critics also see a one-hot skill, fresh
    every ``skill_steps`` steps.
    """

    name: ClassVar[str]  # the key of the settings in the dataset's meta
    reward_label: ClassVar[str] = "reward"  # what the progress bar calls the intrinsic reward
    intrinsic: IntrinsicReward | None = None
    # the extrinsic reward plug-in: the task whose ``transition_reward`` rewards each transition as
    # it is collected, in place of an intrinsic reward
    task: Task | None = None

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

    @classmethod
    def for_domain(cls, domain: Domain, cfg: ExplorerConfig) -> Explorer:
        """The agent for ``domain``'s observations and actions (an agent of a task picks it here)."""
        return cls(domain.obs_dim, domain.action_dim, cfg)

    def settings(self) -> dict[str, Any]:
        """The hyperparameters as the dataset's meta records them."""
        return {**asdict(self.cfg), "utd": self.cfg.utd}

    def parts(self) -> dict[str, Part]:
        """Every network and optimiser by name (what a checkpoint keeps)."""
        names = ("actor", "critics", "actor_target", "critics_target", "actor_opt", "critic_opt")
        own = {name: getattr(self, name) for name in names}
        return own if self.intrinsic is None else {**own, **self.intrinsic.parts()}

    def moments(self) -> dict[str, RunningMoments]:
        own = {"obs": self.obs_moments}
        return own if self.intrinsic is None else {**own, **self.intrinsic.moments()}

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
        assert self.intrinsic is not None, "an agent trained on a task has no intrinsic reward"
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
        terminal: torch.Tensor | None = None,
        reward: torch.Tensor | None = None,
    ) -> None:
        """One gradient step of the intrinsic reward's networks, the critics and the actor on a
        replay batch (a :class:`Batch`'s columns). The rewards are the batch's own where the replay
        keeps them (a task's), else the intrinsic reward's; where ``terminal`` the next observation
        ends its episode and the critics' target does not bootstrap from it."""
        cfg = self.cfg
        s, s_next = self.standardize(obs), self.standardize(next_obs)  # batch x O
        if reward is None:
            assert self.intrinsic is not None
            reward = self.intrinsic.update(s_next, skill)  # batch
        x, x_next = self.condition(s, skill), self.condition(s_next, skill)  # batch x (O [+ K])
        with torch.no_grad():
            noise = torch.randn_like(action) * cfg.target_noise  # batch x A
            noise = noise.clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
            next_action = (self.policy(x_next, target=True) + noise).clamp(-1, 1)  # batch x A
            next_q = self.q_values(x_next, next_action, target=True).min(dim=-1).values  # batch
            target = critic_target(reward, next_q, cfg.discount, terminal)  # batch
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

    def restart(self, envs: np.ndarray) -> None:
        """Fresh noise for the k ``envs`` that start a new episode, as a new wave's."""
        fresh = self.rng.standard_normal((len(envs), self.noise.shape[1]))  # k x A
        self.noise[envs] = self.scale[envs] * fresh


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


class Monitor(Protocol):
    """What watches an exploration wave by wave (the online single-task agent's evaluations); its
    state travels in the exploration's checkpoint."""

    def after_wave(self, agent: Explorer, transitions: int) -> None:
        """Called after every wave with the agent and the number of transitions so far."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Its state: tensors, numbers, strings and lists or dicts of them (no pickled objects)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


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
    monitor: Monitor | None = None,
    keep: bool = False,
) -> tuple[Dataset, Explorer]:
    """Run an ``agent_class.for_domain(domain, cfg)`` explorer for ``episodes`` lanes of
    ``episode_steps`` steps (one episode each where the domain has no terminal states); return its
    transitions and the trained agent.

    Deterministic for a seed and a config: numpy draws starts, random actions, noise, skills and
    replay indices from one generator, and torch (initialisation, target noise) runs in a forked RNG
    seeded the same way, on ``cfg.threads`` threads.

    The dataset's meta holds the settings (under ``agent_class.name``) and, for an agent with skills,
    ``skills``: ``steps`` and ``table`` (lanes x segments), the skill each lane followed in each
    segment of ``steps`` steps (with ``lane`` and ``start``, each episode's lane and first step in
    it, where episodes end at terminal states). On a domain with terminal states it holds
    ``terminal`` and ``truncation``; for an agent of a task, the task's ``reward`` of every
    transition and ``reward_task``.

    With ``checkpoint``, the whole state (agent, optimisers, replay, statistics, both RNGs, the
    episodes so far and the ``monitor``'s state) is written there atomically after every wave of
    ``cfg.envs`` lanes, and a run that finds a checkpoint of the same exploration continues from it:
    an interrupted long run loses at most one wave, and its result is bitwise the uninterrupted
    one. The caller removes the file once the dataset is safely written
    (:func:`zsrl.data.load_or_collect` does). With ``keep`` it is also written after the last wave
    and is then the finished run's cache: the same call returns its dataset and agent at once.
    ``monitor.after_wave`` is called after every wave, before the checkpoint.
    """
    E, T = episodes, episode_steps
    terminates = domain.terminated is not None
    with torch_threads(cfg.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        agent = agent_class.for_domain(domain, cfg)  # the seed's first draws
        K = agent.skills
        state = _Progress(
            rng=np.random.default_rng(seed),
            agent=agent,
            replay=Replay(
                min(cfg.buffer_size, E * T),
                domain.obs_dim,
                domain.action_dim,
                skills=K > 0,
                terminals=terminates,
                rewards=agent.task is not None,
            ),
            physics=np.empty((E, T + 1, BatchSim(domain, 0).state_size)),
            actions=np.empty((E, T, domain.action_dim), np.float32),
            skills=np.zeros((E, -(-T // (agent.skill_steps or T)) if K else 0), np.int64),
            rewards=np.empty((E, T)) if agent.task is not None else None,
            restarts=[] if terminates else None,
            monitor=monitor,
        )
        identity = {
            "domain": domain.name,
            "episodes": E,
            "episode_steps": T,
            "seed": seed,
            **asdict(cfg),
        }
        if terminates:  # explorations before terminals were honoured must not resume here
            identity["episodes_end_at_terminals"] = True
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
            if monitor is not None:
                monitor.after_wave(agent, state.seen)
            if checkpoint is not None and (hi < E or keep):
                _save_progress(Path(checkpoint), identity, state)
        bar.close()
    return _dataset(domain, state), agent


# One lane's restart after a terminal state: (lane, step of the wave, the new episode's start (P,))
Restart = tuple[int, int, np.ndarray]


@dataclass
class _Progress:
    """Everything an exploration carries from one wave of episodes to the next."""

    rng: np.random.Generator
    agent: Explorer
    replay: Replay
    # lanes x (steps + 1) x P: each lane's start, then its state after each step
    physics: np.ndarray
    actions: np.ndarray  # lanes x steps x A
    skills: np.ndarray  # lanes x segments (no columns for an agent without skills)
    rewards: np.ndarray | None = None  # lanes x steps: the task's rewards (an agent of a task)
    # where a lane started a new episode after a terminal state (None: a domain without them); the
    # state before that step is the new start, not ``physics``' terminal state
    restarts: list[Restart] | None = None
    monitor: Monitor | None = None
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
    if state.rewards is not None:
        payload["rewards"] = torch.from_numpy(state.rewards[:done].copy())
    if state.restarts is not None:
        P = state.physics.shape[-1]
        payload["restarts"] = {
            "index": torch.tensor([(e, t) for e, t, _ in state.restarts], dtype=torch.int64),
            "states": torch.from_numpy(np.array([s for *_, s in state.restarts]).reshape(-1, P)),
        }
    if state.monitor is not None:
        payload["monitor"] = state.monitor.state_dict()
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
    if state.rewards is not None:
        state.rewards[:done] = payload["rewards"].numpy()
    if state.restarts is not None:
        index, starts = payload["restarts"]["index"].tolist(), payload["restarts"]["states"].numpy()
        state.restarts[:] = [(e, t, start) for (e, t), start in zip(index, starts, strict=True)]
    if state.monitor is not None:
        state.monitor.load_state_dict(payload["monitor"])
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
    """Run lanes lo to hi (one env each) for the wave's steps, learning as the agent goes."""
    agent, cfg, rng, replay = state.agent, state.agent.cfg, state.rng, state.replay
    physics, actions, T, A = state.physics, state.actions, state.actions.shape[1], domain.action_dim
    K, every = agent.skills, agent.skill_steps or T
    sim = BatchSim(domain, hi - lo)
    sim.set_states(domain.sample_start(rng, hi - lo))
    physics[lo:hi, 0] = sim.states()
    obs = domain.observe(physics[lo:hi, 0])  # n x O
    before = physics[lo:hi, 0]  # n x P: the states the step starts from
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
        after = physics[lo:hi, t + 1]  # n x P
        next_obs = domain.observe(after)  # n x O
        terminal = None if state.restarts is None else domain.terminated(after)  # n
        reward = None
        if agent.task is not None:  # the extrinsic reward, from the physics on both sides
            reward = agent.task.transition_reward(before, action, after)  # n
            state.rewards[lo:hi, t] = reward
        replay.add(obs, action, next_obs, skill, terminal, reward)
        agent.obs_moments.update(next_obs)
        obs, before = next_obs, after
        if terminal is not None and terminal.any() and t + 1 < T:
            obs, before = _restart(domain, state, sim, behaviour, lo, t + 1, terminal, obs, after)
        state.seen, state.vector_steps = state.seen + hi - lo, state.vector_steps + 1
        if state.seen >= cfg.random_steps and state.vector_steps % cfg.update_every == 0:
            for _ in range(cfg.updates):
                agent.update(*replay.sample(rng, cfg.batch_size))
        bar.update(hi - lo)
    if agent.intrinsic is not None:
        bar.set_postfix({agent.reward_label: f"{agent.intrinsic_reward(obs, skill).mean():.3g}"})
    elif state.rewards is not None:
        bar.set_postfix({agent.reward_label: f"{state.rewards[lo:hi].mean():.3g}"})


def _restart(
    domain: Domain,
    state: _Progress,
    sim: BatchSim,
    behaviour: Exploration,
    lo: int,
    t: int,
    terminal: np.ndarray,
    obs: np.ndarray,
    after: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Start the next episode, from the start distribution, in the wave's envs whose episode has
    just ended at a terminal state (``terminal`` (n,)), before step ``t``; return the observations
    (n, O) and physics states (n, P) that step starts from."""
    envs = np.flatnonzero(terminal)  # k
    sim.set_states(domain.sample_start(state.rng, len(envs)), envs)
    starts = sim.states()[envs]  # k x P
    assert state.restarts is not None
    state.restarts.extend((lo + int(e), t, start) for e, start in zip(envs, starts, strict=True))
    obs, before = obs.copy(), after.copy()  # n x O, n x P
    obs[envs], before[envs] = domain.observe(starts), starts
    state.agent.obs_moments.update(obs[envs])
    behaviour.restart(envs)
    return obs, before


def _dataset(domain: Domain, state: _Progress) -> Dataset:
    """The transitions of a finished exploration, with the agent's settings (and skills) as meta."""
    agent, (E, T, A) = state.agent, state.actions.shape
    flat_physics = state.physics[:, :-1].reshape(E * T, -1)
    flat_next = state.physics[:, 1:].reshape(E * T, -1)
    episode = np.repeat(np.arange(E, dtype=np.int32), T)
    meta: dict[str, Any] = {agent.name: agent.settings()}
    if agent.skills:
        meta["skills"] = {"steps": agent.skill_steps or T, "table": state.skills.tolist()}
    flags: dict[str, np.ndarray] = {}
    if state.restarts is not None:
        before = state.physics[:, :-1].copy()  # E x T x P
        first = np.zeros((E, T), bool)  # E x T: the step starts an episode
        first[:, 0] = True
        for e, t, start in state.restarts:
            before[e, t], first[e, t] = start, True
        done = domain.terminated(state.physics[:, 1:])  # E x T
        assert np.array_equal(first[:, 1:], done[:, :-1]), "a lane went on past a terminal state"
        flat_physics = before.reshape(E * T, -1)
        episode = (np.cumsum(first) - 1).astype(np.int32)  # E * T, row-major
        last = np.zeros((E, T), bool)  # E x T: each lane's last step
        last[:, -1] = True
        flags["terminal"], flags["truncation"] = done.ravel(), (last & ~done).ravel()
        if agent.skills:
            lane, step = np.nonzero(first)  # each episode's lane and first step, in episode order
            meta["skills"].update(lane=lane.tolist(), start=step.tolist())
    if state.rewards is not None:
        assert agent.task is not None
        flags["reward"] = state.rewards.reshape(E * T).astype(np.float32)
        meta["reward_task"] = agent.task.name
    return Dataset(
        observation=domain.observe(flat_physics),
        action=state.actions.reshape(E * T, A),
        next_observation=domain.observe(flat_next),
        physics=flat_physics,
        next_physics=flat_next,
        episode=episode,
        meta=meta,
        **flags,
    )
