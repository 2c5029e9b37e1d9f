"""Random network distillation (RND) exploration: an online agent whose experience becomes a dataset.

ExORL's high-coverage datasets (reference: ref-exorl) are what URLB's RND agent saw while exploring: an
actor-critic trained online on an intrinsic reward only, the error of a predictor network that
regresses a fixed, randomly initialised target network (Burda et al. 2019). States visited often are
predicted well and pay little; novel states pay more, so the policy keeps moving to where it has not
been. This module is a small CPU version of that idea, written for this project:

- ``envs`` copies of the domain (:class:`~zsrl.envs.BatchSim`) step in lock-step and share one batched
  actor forward pass; episodes start from ``domain.sample_start`` and run in waves of ``envs``;
- after ``random_steps`` transitions of uniform random actions, every ``update_every`` vector steps
  the agent does ``updates`` gradient steps on replay batches, an update-to-data ratio of
  ``updates / (envs * update_every)``;
- the actor-critic is TD3-like (twin critics, target policy smoothing) and acts with Gaussian noise,
  correlated in time and of a different scale in each env (:class:`Exploration`);
- the RND networks see observations standardised by running statistics, and the reward is the
  prediction error divided by its running standard deviation;
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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from zsrl.data.dataset import Dataset
from zsrl.envs import BatchSim, Domain
from zsrl.io import atomic_write_bytes
from zsrl.nets import mlp


@dataclass(frozen=True)
class RNDConfig:
    """Hyperparameters of the RND explorer: one set per scale, recorded in the dataset's meta."""

    episodes: int = 100  # default number of episodes (100 x 1000 steps = 100k transitions)
    envs: int = 10  # environments stepped in lock-step (episodes run in waves of this many)
    random_steps: int = 5_000  # the first transitions take uniform random actions
    update_every: int = 1  # vector steps (of ``envs`` transitions each) between rounds of updates
    updates: int = 5  # gradient steps per round
    batch_size: int = 256
    buffer_size: int = 100_000  # replay of the latest transitions, for critics, actor, predictor
    hidden: int = 256  # width of the two hidden layers of every network
    rnd_dim: int = 64  # output size of the random target and of the predictor
    lr: float = 3e-4  # Adam, for actor, critics and predictor
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


SCALES: dict[str, RNDConfig] = {
    "book": RNDConfig(),  # 100k maze transitions in about 11 minutes on one CPU core
    "quick": RNDConfig(  # 4k transitions in seconds, for tests
        episodes=4,
        envs=4,
        random_steps=1_000,
        updates=1,
        batch_size=64,
        hidden=64,
        rnd_dim=16,
    ),
}


# The paper's way: one long exploration, of which the 100k datasets are uniform subsamples.
# ExORL explores for about 10M steps with one environment; on one CPU core this run makes 1M
# transitions in waves of 40 environments, each wave a checkpoint. Ten gradient steps per vector
# step is one update per 4 transitions (URLB's explorers make one per 2): at one per 10 the
# explorer's policy settled in the start room after its first 100k transitions.
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
    """A ring buffer of the latest ``capacity`` transitions (obs, action, next obs)."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int):
        self.obs = np.zeros((capacity, obs_dim), np.float32)  # capacity x O
        self.action = np.zeros((capacity, action_dim), np.float32)  # capacity x A
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)  # capacity x O
        self.capacity, self.size, self.cursor = capacity, 0, 0

    def add(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> None:
        index = (self.cursor + np.arange(len(obs))) % self.capacity  # n
        self.obs[index], self.action[index], self.next_obs[index] = obs, action, next_obs
        self.cursor = (self.cursor + len(obs)) % self.capacity
        self.size = min(self.size + len(obs), self.capacity)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...]:
        index = rng.integers(0, self.size, size=n)  # n
        return tuple(torch.from_numpy(a[index]) for a in (self.obs, self.action, self.next_obs))


class RNDAgent:
    """A deterministic actor, twin critics and the RND pair, trained on intrinsic reward only."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: RNDConfig):
        self.cfg = cfg
        self.actor = mlp(obs_dim, cfg.hidden, 2, action_dim)
        self.critics = nn.ModuleList(
            [mlp(obs_dim + action_dim, cfg.hidden, 2, 1) for _ in range(2)]
        )
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.rnd_target = mlp(obs_dim, cfg.hidden, 2, cfg.rnd_dim).requires_grad_(False)  # fixed
        self.predictor = mlp(obs_dim, cfg.hidden, 2, cfg.rnd_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr)
        self.predictor_opt = torch.optim.Adam(self.predictor.parameters(), lr=cfg.lr)
        self.obs_moments = RunningMoments((obs_dim,))
        self.reward_moments = RunningMoments()

    def standardize(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations (n, O) centred and scaled by the running statistics of all seen so far.

        Not clipped (unlike RND on Atari): while the agent has only seen the first room, the other
        rooms lie 5 to 10 standard deviations away, and clipping made them all look alike.
        """
        mean = torch.as_tensor(self.obs_moments.mean, dtype=torch.float32)  # O
        std = torch.as_tensor(self.obs_moments.std, dtype=torch.float32)  # O
        return (obs - mean) / std  # n x O

    def policy(self, s: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Deterministic actions in [-1, 1] for standardised observations s (n, O)."""
        return (self.actor_target if target else self.actor)(s).tanh()  # n x A

    def q_values(self, s: torch.Tensor, a: torch.Tensor, target: bool = False) -> torch.Tensor:
        critics = self.critics_target if target else self.critics
        sa = torch.cat([s, a], dim=-1)  # n x (O + A)
        return torch.cat([q(sa) for q in critics], dim=-1)  # n x 2

    def novelty(self, s: torch.Tensor) -> torch.Tensor:
        """RND prediction error of standardised observations s (n, O): (n,)."""
        return (self.predictor(s) - self.rnd_target(s)).pow(2).mean(dim=-1)  # n

    def intrinsic_reward(self, obs: np.ndarray) -> np.ndarray:
        """Novelty of raw observations (n, O) divided by the running std of rewards: (n,)."""
        with torch.no_grad():
            error = self.novelty(self.standardize(torch.from_numpy(obs)))  # n
        return error.numpy() / self.reward_moments.std

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """The actor's actions for raw observations (n, O), one batched forward: (n, A)."""
        return self.policy(self.standardize(torch.from_numpy(obs))).numpy()

    def update(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> None:
        """One gradient step of critics, actor and predictor on a replay batch."""
        cfg = self.cfg
        s, s_next = self.standardize(obs), self.standardize(next_obs)  # batch x O
        error = self.novelty(s_next)  # batch: with gradient, for the predictor
        self.predictor_opt.zero_grad()
        error.mean().backward()
        self.predictor_opt.step()
        with torch.no_grad():
            self.reward_moments.update(error.numpy())
            reward = error / float(self.reward_moments.std)  # batch
            noise = torch.randn_like(action) * cfg.target_noise  # batch x A
            noise = noise.clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
            next_action = (self.policy(s_next, target=True) + noise).clamp(-1, 1)  # batch x A
            next_q = self.q_values(s_next, next_action, target=True).min(dim=-1).values  # batch
            target = reward + cfg.discount * next_q  # batch: no terminals, time limits only
        q = self.q_values(s, action)  # batch x 2
        critic_loss = F.mse_loss(q, target[:, None].expand_as(q))
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        actor_loss = -self.q_values(s, self.policy(s))[:, 0].mean()
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

    def __init__(self, cfg: RNDConfig, n: int, action_dim: int, rng: np.random.Generator):
        self.rho, self.rng = cfg.noise_correlation, rng
        self.scale = np.geomspace(cfg.noise_min or cfg.noise, cfg.noise, n)[:, None]  # n x 1
        self.noise = self.scale * rng.standard_normal((n, action_dim))  # n x A

    def __call__(self, policy_action: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1] (n, A) from the actor's actions (n, A)."""
        fresh = self.scale * self.rng.standard_normal(policy_action.shape)  # n x A
        self.noise = self.rho * self.noise + np.sqrt(1 - self.rho**2) * fresh  # std stays scale
        return np.clip(policy_action + self.noise, -1.0, 1.0)  # n x A


def explore(
    domain: Domain,
    episodes: int,
    episode_steps: int,
    seed: int,
    cfg: RNDConfig,
    progress: bool = True,
    desc: str = "rnd",
    checkpoint: Path | None = None,
) -> tuple[Dataset, RNDAgent]:
    """Run the RND agent for ``episodes`` episodes; return its transitions and the trained agent.

    Deterministic for a seed and a config: numpy draws starts, random actions, noise and replay
    indices from one generator, and torch (initialisation, target noise) runs in a forked RNG seeded
    the same way, on ``cfg.threads`` threads.

    With ``checkpoint``, the whole state (agent, optimisers, replay, statistics, both RNGs and the
    episodes so far) is written there atomically after every wave of ``cfg.envs`` episodes, and a run
    that finds a checkpoint of the same exploration continues from it: an interrupted long run loses
    at most one wave, and its result is bitwise the uninterrupted one. The caller removes the file
    once the dataset is safely written (:func:`zsrl.data.load_or_collect` does).
    """
    with torch_threads(cfg.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _explore(domain, episodes, episode_steps, seed, cfg, progress, desc, checkpoint)


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


@dataclass
class _Progress:
    """Everything an exploration carries from one wave of episodes to the next."""

    rng: np.random.Generator
    agent: RNDAgent
    replay: Replay
    physics: np.ndarray  # episodes x (steps + 1) x P
    actions: np.ndarray  # episodes x steps x A
    next_episode: int = 0
    seen: int = 0  # transitions so far
    vector_steps: int = 0


def _networks(agent: RNDAgent) -> dict[str, nn.Module | torch.optim.Optimizer]:
    names = ("actor", "critics", "actor_target", "critics_target", "rnd_target", "predictor")
    optimisers = ("actor_opt", "critic_opt", "predictor_opt")
    return {name: getattr(agent, name) for name in names + optimisers}


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
        for name, m in (("obs", agent.obs_moments), ("reward", agent.reward_moments))
    }
    payload = {
        "identity": identity,
        "next_episode": done,
        "seen": state.seen,
        "vector_steps": state.vector_steps,
        "physics": torch.from_numpy(state.physics[:done].copy()),
        "actions": torch.from_numpy(state.actions[:done].copy()),
        "networks": {name: net.state_dict() for name, net in _networks(agent).items()},
        "moments": moments,
        "replay": {
            "obs": torch.from_numpy(replay.obs),
            "action": torch.from_numpy(replay.action),
            "next_obs": torch.from_numpy(replay.next_obs),
            "size": replay.size,
            "cursor": replay.cursor,
        },
        # PCG64's 128-bit integers as strings: the weights-only loader needs no arbitrary pickles
        "numpy_rng": json.dumps(state.rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
    }
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
    for name, net in _networks(state.agent).items():
        net.load_state_dict(payload["networks"][name])
    for name, m in (("obs", state.agent.obs_moments), ("reward", state.agent.reward_moments)):
        saved = payload["moments"][name]
        m.mean, m.var, m.count = saved["mean"].numpy(), saved["var"].numpy(), saved["count"]
    replay = payload["replay"]
    state.replay.obs[:] = replay["obs"].numpy()
    state.replay.action[:] = replay["action"].numpy()
    state.replay.next_obs[:] = replay["next_obs"].numpy()
    state.replay.size, state.replay.cursor = replay["size"], replay["cursor"]
    state.rng.bit_generator.state = json.loads(payload["numpy_rng"])
    torch.set_rng_state(payload["torch_rng"])


def _explore(
    domain: Domain,
    episodes: int,
    episode_steps: int,
    seed: int,
    cfg: RNDConfig,
    progress: bool,
    desc: str,
    checkpoint: Path | None = None,
) -> tuple[Dataset, RNDAgent]:
    E, T, A = episodes, episode_steps, domain.action_dim
    agent = RNDAgent(domain.obs_dim, A, cfg)
    P = BatchSim(domain, 0).state_size
    state = _Progress(
        rng=np.random.default_rng(seed),
        agent=agent,
        replay=Replay(min(cfg.buffer_size, E * T), domain.obs_dim, A),
        physics=np.empty((E, T + 1, P)),
        actions=np.empty((E, T, A), np.float32),
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
    rng, replay, physics, actions = state.rng, state.replay, state.physics, state.actions
    bar = tqdm(total=E * T, initial=state.seen, desc=desc, unit="step", disable=not progress)
    for lo in range(state.next_episode, E, cfg.envs):
        hi = min(lo + cfg.envs, E)
        sim = BatchSim(domain, hi - lo)
        sim.set_states(domain.sample_start(rng, hi - lo))
        physics[lo:hi, 0] = sim.states()
        obs = domain.observe(physics[lo:hi, 0])  # n x O
        agent.obs_moments.update(obs)
        behaviour = Exploration(cfg, hi - lo, A, rng)
        for t in range(T):
            if state.seen < cfg.random_steps:
                action = rng.uniform(-1.0, 1.0, size=(hi - lo, A))  # n x A
            else:
                action = behaviour(agent.act(obs))  # n x A
            action = action.astype(np.float32)  # stored exactly as stepped
            physics[lo:hi, t + 1] = sim.step(action.astype(np.float64))
            actions[lo:hi, t] = action
            next_obs = domain.observe(physics[lo:hi, t + 1])  # n x O
            replay.add(obs, action, next_obs)
            agent.obs_moments.update(next_obs)
            obs, state.seen, state.vector_steps = (
                next_obs,
                state.seen + hi - lo,
                state.vector_steps + 1,
            )
            if state.seen >= cfg.random_steps and state.vector_steps % cfg.update_every == 0:
                for _ in range(cfg.updates):
                    agent.update(*replay.sample(rng, cfg.batch_size))
            bar.update(hi - lo)
        bar.set_postfix(novelty=f"{agent.intrinsic_reward(obs).mean():.3g}")
        state.next_episode = hi
        if checkpoint is not None and hi < E:
            _save_progress(Path(checkpoint), identity, state)
    bar.close()
    flat_physics = physics[:, :-1].reshape(E * T, -1)
    flat_next = physics[:, 1:].reshape(E * T, -1)
    dataset = Dataset(
        observation=domain.observe(flat_physics),
        action=actions.reshape(E * T, A),
        next_observation=domain.observe(flat_next),
        physics=flat_physics,
        next_physics=flat_next,
        episode=np.repeat(np.arange(E, dtype=np.int32), T),
        meta={"rnd": {**asdict(cfg), "utd": cfg.utd}},
    )
    return dataset, agent
