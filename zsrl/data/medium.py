"""D4RL-style ``medium``, ``medium-replay`` and ``medium-expert`` data on the Gymnasium domains, made
the way D4RL made its Gym-MuJoCo datasets, from one online agent trained on the task's reward.

D4RL (reference: ref-d4rl) trained an online SAC agent on each environment's reward. ``medium`` is
1M transitions of its policy stopped early at about a third of the expert's score; ``medium-replay``
is the agent's replay buffer up to that stop (every transition it saw while training there);
``medium-expert`` is medium's data and as many of an expert policy's, mixed 50/50. Here:

- **The agent** is :mod:`zsrl.data.explorer`'s actor-critic with the task's own reward
  (:class:`TaskAgent`: ``Task.transition_reward``, which for the gym domains reads the state before
  the step) in place of an intrinsic one. It is TD3-like (twin critics, target-policy smoothing,
  white Gaussian action noise of std 0.1, one gradient step per transition, the actor updated at
  every step), not D4RL's SAC. Its episodes end at terminal states (the walker falls), where the
  critics do not bootstrap.
- **One training run feeds the three datasets.** It trains for the whole budget, the scale's
  ``episodes`` lanes of ``episode_steps`` transitions (its settings and seed name it), and after
  every wave it evaluates the deterministic policy (``eval_episodes`` episodes from the same
  starts each time). The first evaluation whose mean return reaches the target,
  ``target_fraction`` (1/3) of D4RL's expert reference return (walker2d 4592.3 -> 1530.8,
  halfcheetah 12135.0 -> 4045.0), is the **stop**: the run keeps a copy of the policy there, and
  goes on to the end of its budget. A run that never reaches the target stops at the end of its
  budget; the meta then says ``reached: false`` and gives the return reached. It never loops on.
- **Cached and resumable.** The run is the explorer's checkpoint, ``NAME.run.pt`` beside the
  datasets (NAME is the ``medium`` dataset's name, whichever of the three asks): written after
  every wave (an interrupted run resumes bitwise where it stopped) and kept once finished, with a
  checksum sidecar, so the first of the three collectors trains and the other two only read it.
  ``--regenerate`` remakes a dataset from it; delete it to train the run anew.
- ``medium``: ``policy_transitions`` transitions of the stop's policy acting with Gaussian noise of
  std ``policy_noise``, whole episodes from the start distribution, the last one cut at the size
  (marked ``truncation``), as D4RL's collection script cut its last. D4RL's is 1M transitions; the
  book scale's is 100k.
- ``medium-replay``: the run's transitions up to the stop, i.e. its replay buffer there (the buffer
  holds the whole budget, as D4RL's 1M buffer did).
- ``medium-expert``: ``medium`` followed by as many transitions of **the policy at the end of the
  training budget**, acting with the same noise. That policy is **not D4RL's expert** (a policy of
  D4RL's expert score, walker2d about 4600 and halfcheetah about 12000, is out of reach in an hour of
  one CPU core); its measured return is in the meta (``run.end``), beside D4RL's expert return.

Every dataset holds whole episodes in order with ``terminal`` and ``truncation`` flags, the task's
``reward`` of every transition and the physics states on both sides. Its meta holds ``run``, the
same for the three: the run's name, size, target, evaluations, stop and end, each return with its
D4RL-normalised score.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zsrl.data.dataset import Dataset, DatasetError
from zsrl.data.explorer import (
    QUICK_SETTINGS,
    Explorer,
    ExplorerConfig,
    explore,
    torch_threads,
)
from zsrl.envs import BatchSim, Domain, Task, domain_names, get_domain
from zsrl.io import checksum_path, sha256_file, stored_checksum, write_checksum

KINDS = ("medium", "medium-replay", "medium-expert")

# Streams of the run's seed, each a generator of its own: the evaluations' starts, and the episodes
# of the stop's and of the end's policies (medium-expert's first half is medium itself).
EVALUATION, MEDIUM, END = 1, 2, 3


@dataclass(frozen=True)
class OnlineConfig(ExplorerConfig):
    """Hyperparameters of the online single-task agent and of the datasets made from its run: one
    set per scale, recorded in the datasets' meta. The explorer's defaults are changed to TD3's."""

    episodes: int = 250  # the training budget: lanes of episode_steps (250 x 1000 = 250k steps)
    envs: int = 4
    random_steps: int = 10_000  # TD3's uniform random start steps
    updates: int = 4  # one gradient step per transition (4 envs), as D4RL's SAC took per step
    buffer_size: int = 1_000_000  # the whole run: medium-replay is its replay up to the stop
    tau: float = 0.005  # TD3's
    noise: float = 0.1  # TD3's exploration: white Gaussian noise of std 0.1 ...
    noise_min: float | None = None  # ... the same in every env ...
    noise_correlation: float = 0.0  # ... and uncorrelated in time
    target_fraction: float = 1 / 3  # the stop: this share of D4RL's expert reference return
    eval_episodes: int = 10  # deterministic episodes after every wave, from fixed starts
    policy_transitions: int = 100_000  # medium's size, and each half of medium-expert's
    policy_noise: float = 0.1  # std of the Gaussian noise the frozen policies act with
    rollout_envs: int = 10  # episodes of a frozen policy simulated together


SCALES: dict[str, OnlineConfig] = {
    # 250k training steps, one gradient step each (hidden 256, batch 256, one thread). Timed on
    # this project's 2-core CPU shared with two training runs (one wave of 4 x 1000 steps, 2000 of
    # them learning): 13.3 ms a learning step on halfcheetah, 13.7 on walker2d, the networks' time
    # (random steps 0.05 and 0.3 ms); an evaluation 0.6 and 0.4 s, a checkpoint 0.3 s (62 of each);
    # a frozen policy's 100k transitions 6 and 18 s. So about 55 minutes a domain for the run
    # (estimated, not run whole), and seconds for each dataset after it. D4RL trained to 1M steps
    # at most and its medium is 1M transitions; book's medium is 100k.
    "book": OnlineConfig(),
    # tests: one wave of 4 lanes (4k steps at 1000 a lane), far from the target
    "quick": OnlineConfig(**QUICK_SETTINGS, eval_episodes=2, policy_transitions=2_000),
}


def has_objective(domain: Domain) -> bool:
    """Whether ``domain`` has one task whose reward is its objective, with D4RL's reference returns
    (the Gymnasium domains): what the D4RL-style datasets need."""
    return domain.d4rl_name is not None and len(domain.tasks) == 1


def objective_domains() -> list[str]:
    """The registered domains the D4RL-style datasets support."""
    return [name for name in domain_names() if has_objective(get_domain(name))]


def objective(domain: Domain) -> Task:
    """The domain's one task; a domain without one is a ValueError listing those with one."""
    if not has_objective(domain):
        raise ValueError(
            f"the D4RL-style datasets need a domain with one task, its objective, and D4RL's "
            f"reference returns; domain {domain.name!r} has tasks {sorted(domain.tasks)}; "
            f"supported domains: {objective_domains()}"
        )
    return next(iter(domain.tasks.values()))


def target_return(domain: Domain, cfg: OnlineConfig) -> float:
    """The stop's return: ``cfg.target_fraction`` of D4RL's expert reference return."""
    from zsrl.data.readers.d4rl import D4RL_REFERENCE_RETURNS  # the readers import the collectors

    return cfg.target_fraction * D4RL_REFERENCE_RETURNS[domain.d4rl_name][1]


def normalized(domain: Domain, episode_return: float) -> float:
    """D4RL's normalised score of a return on ``domain``."""
    from zsrl.data.readers.d4rl import d4rl_normalized_score

    return float(d4rl_normalized_score(domain.d4rl_name, episode_return))


class TaskAgent(Explorer):
    """The explorer trained on its domain's one task: the extrinsic reward plug-in ``task``, each
    transition's ``transition_reward``, replaces an intrinsic reward."""

    name = "online"

    def __init__(self, obs_dim: int, action_dim: int, cfg: OnlineConfig, task: Task):
        super().__init__(obs_dim, action_dim, cfg)
        self.task = task

    @classmethod
    def for_domain(cls, domain: Domain, cfg: ExplorerConfig) -> TaskAgent:
        assert isinstance(cfg, OnlineConfig)
        return cls(domain.obs_dim, domain.action_dim, cfg, objective(domain))


class Policy:
    """A frozen copy of an agent's deterministic policy: its actor and the observation statistics
    it standardises with, acting as :meth:`Explorer.act` does."""

    def __init__(self, actor: nn.Module, mean: np.ndarray, var: np.ndarray, count: float):
        self.actor = actor.requires_grad_(False)
        self.mean, self.var, self.count = mean, var, count  # O, O, 1

    @classmethod
    def of(cls, agent: Explorer) -> Policy:
        m = agent.obs_moments
        return cls(copy.deepcopy(agent.actor), m.mean.copy(), m.var.copy(), m.count)

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1] (n, A) for raw observations (n, O)."""
        mean = torch.as_tensor(self.mean, dtype=torch.float32)  # O
        std = torch.as_tensor(np.sqrt(self.var) + 1e-8, dtype=torch.float32)  # O
        return self.actor((torch.from_numpy(obs) - mean) / std).tanh().numpy()  # n x A

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "mean": torch.from_numpy(self.mean),
            "var": torch.from_numpy(self.var),
            "count": float(self.count),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], template: nn.Module) -> Policy:
        actor = copy.deepcopy(template)
        actor.load_state_dict(state["actor"])
        return cls(actor, state["mean"].numpy(), state["var"].numpy(), state["count"])


@dataclass
class Episodes:
    """Episodes simulated together (n of them, each at most ``steps`` long)."""

    physics: np.ndarray  # n x (steps + 1) x P
    actions: np.ndarray  # n x steps x A, float32
    rewards: np.ndarray  # n x steps: the task's
    length: np.ndarray  # n: steps up to and including the episode's end
    terminal: np.ndarray  # n, bool: the episode ended at a terminal state

    def returns(self) -> np.ndarray:
        """Each episode's return (n,), up to its end."""
        inside = np.arange(self.rewards.shape[1]) < self.length[:, None]  # n x steps
        return np.where(inside, self.rewards, 0.0).sum(axis=1)


def rollouts(
    domain: Domain,
    policy: Policy,
    starts: np.ndarray,
    steps: int,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> Episodes:
    """Episodes of ``policy`` from ``starts`` (n, P), each until its first terminal state or for
    ``steps`` steps, acting with Gaussian noise of std ``noise`` (drawn from ``rng``) clipped to
    [-1, 1]; rewarded by the domain's task, as the evaluation scores a policy."""
    task, n = objective(domain), len(starts)
    sim = BatchSim(domain, n)
    sim.set_states(starts)
    physics = np.zeros((n, steps + 1, sim.state_size))  # n x (steps + 1) x P
    physics[:, 0] = sim.states()
    actions = np.zeros((n, steps, domain.action_dim), np.float32)  # n x steps x A
    rewards = np.zeros((n, steps))  # n x steps
    length, terminal = np.full(n, steps), np.zeros(n, bool)  # n, n
    running = np.ones(n, bool)  # n
    for t in range(steps):
        action = policy(domain.observe(physics[:, t]))  # n x A
        if noise > 0:
            assert rng is not None
            action = np.clip(action + noise * rng.standard_normal(action.shape), -1.0, 1.0)
        actions[:, t] = action
        physics[:, t + 1] = sim.step(actions[:, t].astype(np.float64))
        rewards[:, t] = task.transition_reward(physics[:, t], actions[:, t], physics[:, t + 1])
        if domain.terminated is not None:
            ended = running & domain.terminated(physics[:, t + 1])  # n
            length[ended], terminal[ended], running[ended] = t + 1, True, False
            if not running.any():
                break
    return Episodes(physics, actions, rewards, length, terminal)


def policy_dataset(
    domain: Domain,
    policy: Policy,
    transitions: int,
    steps: int,
    noise: float,
    rng: np.random.Generator,
    batch: int,
) -> tuple[Dataset, np.ndarray]:
    """``transitions`` transitions of ``policy`` acting with noise, in whole episodes of at most
    ``steps`` steps from the start distribution (``batch`` simulated together), the last cut at
    the size, as D4RL collected its medium and expert data; and the returns of the episodes not
    cut (the policy's measured return with that noise)."""
    physics, next_physics, actions, rewards, terminal, returns = [], [], [], [], [], []
    total = 0
    while total < transitions:
        episodes = rollouts(domain, policy, domain.sample_start(rng, batch), steps, noise, rng)
        for i, length in enumerate(episodes.length):
            kept = min(length, transitions - total)
            physics.append(episodes.physics[i, :kept])
            next_physics.append(episodes.physics[i, 1 : kept + 1])
            actions.append(episodes.actions[i, :kept])
            rewards.append(episodes.rewards[i, :kept])
            ends = np.zeros(kept, bool)  # kept: the step ends its episode at a terminal state
            ends[-1] = kept == length and episodes.terminal[i]
            terminal.append(ends)
            if kept == length:
                returns.append(episodes.rewards[i, :length].sum())
            total += kept
            if total == transitions:
                break
    lengths = [len(a) for a in actions]
    episode = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)  # n
    last = np.r_[episode[1:] != episode[:-1], True]  # n: the episode's last transition
    is_terminal = np.concatenate(terminal)  # n
    flat_physics, flat_next = np.concatenate(physics), np.concatenate(next_physics)  # n x P each
    # flags where episodes may end at terminal states; elsewhere none, as the other collectors
    flags = {"terminal": is_terminal, "truncation": last & ~is_terminal}
    if domain.terminated is None:
        flags = {}
    dataset = Dataset(
        observation=domain.observe(flat_physics),
        action=np.concatenate(actions),
        next_observation=domain.observe(flat_next),
        physics=flat_physics,
        next_physics=flat_next,
        episode=episode,
        reward=np.concatenate(rewards).astype(np.float32),
        meta={"reward_task": objective(domain).name},
        **flags,
    )
    return dataset, np.array(returns)


class StopWatch:
    """The run's monitor: evaluates the policy after every wave and keeps a copy of it the first
    time the mean return reaches the target (the stop)."""

    def __init__(self, domain: Domain, cfg: OnlineConfig, steps: int, seed: int):
        self.domain, self.steps, self.target = domain, steps, target_return(domain, cfg)
        evaluation_rng = np.random.default_rng([seed, EVALUATION])
        self.starts = domain.sample_start(evaluation_rng, cfg.eval_episodes)  # the same each time
        self.evaluations: list[dict[str, Any]] = []  # transitions, mean return, episode returns
        self.stop: dict[str, Any] | None = None  # the first evaluation at the target, + waves
        self.stop_policy: Policy | None = None
        self.stop_saved: dict[str, Any] | None = None  # the stop's policy, read from a checkpoint

    def after_wave(self, agent: Explorer, transitions: int) -> None:
        policy = Policy.of(agent)
        returns = rollouts(self.domain, policy, self.starts, self.steps).returns()
        mean = float(returns.mean())
        evaluation = {"transitions": transitions, "return": mean, "returns": returns.tolist()}
        self.evaluations.append(evaluation)
        if self.stop is None and mean >= self.target:
            self.stop = {"transitions": transitions, "return": mean, "reached": True}
            self.stop_policy = policy

    def state_dict(self) -> dict[str, Any]:
        stop = None
        if self.stop is not None:
            assert self.stop_policy is not None
            stop = {**self.stop, "policy": self.stop_policy.state_dict()}
        return {"evaluations": self.evaluations, "stop": stop}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.evaluations = list(state["evaluations"])
        self.stop = None
        if state["stop"] is not None:
            self.stop = {k: v for k, v in state["stop"].items() if k != "policy"}
            self.stop_saved = state["stop"]["policy"]


@dataclass
class TrainingRun:
    """The online training run the three datasets derive from."""

    data: Dataset  # every transition of the run, lanes in order
    stop_policy: Policy  # at the first evaluation at the target, or at the end of the budget
    end_policy: Policy  # at the end of the budget (not D4RL's expert)
    summary: dict[str, Any]  # the datasets' meta["run"]

    @property
    def stop_transitions(self) -> int:
        return self.summary["stop"]["transitions"]


def training_run(
    domain: Domain,
    episodes: int,
    steps: int,
    seed: int,
    cfg: OnlineConfig,
    name: str,
    progress: bool = True,
    path: Path | None = None,
) -> TrainingRun:
    """Train the online agent for ``episodes`` lanes of ``steps`` steps (deterministic for a seed
    and a config), watching for the stop; with ``path``, resumably, and kept there once done (a
    finished run there is read back at once). A finished run's file gets a checksum sidecar,
    checked before it is read again: a damaged one is a :class:`DatasetError` naming it."""
    if path is not None:
        _check_run_file(Path(path))
    watch = StopWatch(domain, cfg, steps, seed)
    data, agent = explore(
        domain,
        episodes,
        steps,
        seed,
        cfg,
        TaskAgent,
        progress=progress,
        desc=f"train {name}",
        checkpoint=path,
        monitor=watch,
        keep=True,
    )
    if path is not None and stored_checksum(path) is None:
        write_checksum(path)  # finished: from now on the file is a cache, checked on every read
    end_policy = Policy.of(agent)
    if watch.stop is None:  # the target was not reached within the budget: stop at its end
        final = watch.evaluations[-1]
        watch.stop = {"transitions": final["transitions"], "return": final["return"]}
        watch.stop["reached"], stop_policy = False, end_policy
    elif watch.stop_policy is None:  # read back from the checkpoint
        assert watch.stop_saved is not None
        stop_policy = Policy.from_state_dict(watch.stop_saved, agent.actor)
    else:
        stop_policy = watch.stop_policy
    end_return = watch.evaluations[-1]["return"]
    summary = {
        "name": name,
        "transitions": len(data),
        "episodes": int(data.episode[-1]) + 1,
        "target_return": watch.target,
        "target_normalized_score": normalized(domain, watch.target),
        "evaluations": [
            {"transitions": e["transitions"], "return": e["return"]} for e in watch.evaluations
        ],
        "stop": {**watch.stop, "normalized_score": normalized(domain, watch.stop["return"])},
        "end": {
            "transitions": len(data),
            "return": end_return,
            "normalized_score": normalized(domain, end_return),
            "policy": "the agent at the end of its training budget, not D4RL's expert",
        },
        "evaluation_episodes": cfg.eval_episodes,
    }
    return TrainingRun(data, stop_policy, end_policy, summary)


def _check_run_file(path: Path) -> None:
    """A finished run's file must match its checksum; a checksum left without its file goes."""
    if not path.exists():
        checksum_path(path).unlink(missing_ok=True)
        return
    expected = stored_checksum(path)
    if expected is not None and sha256_file(path) != expected:
        raise DatasetError(
            f"training run file {path} does not match its checksum (damaged); delete it and its "
            f"{checksum_path(path).name} to train the run again"
        )


def dataset_transitions(kind: str, cfg: OnlineConfig) -> int | None:
    """The transitions of a ``kind`` dataset made with ``cfg``: ``policy_transitions`` for
    ``medium``, twice that for ``medium-expert``; None for ``medium-replay``, whose size is the
    training run's up to its stop."""
    if kind not in KINDS:
        raise ValueError(f"unknown D4RL-style dataset {kind!r}; valid ones: {list(KINDS)}")
    if kind == "medium-replay":
        return None
    return cfg.policy_transitions * (2 if kind == "medium-expert" else 1)


def collect(
    kind: str,
    domain_name: str,
    episodes: int,
    steps: int,
    seed: int,
    cfg: OnlineConfig,
    run_name: str,
    progress: bool = True,
    run_path: Path | None = None,
) -> Dataset:
    """The ``kind`` dataset (``medium``, ``medium-replay``, ``medium-expert``) of the training run
    named ``run_name`` (kept at ``run_path``, trained first if it is not there)."""
    if kind not in KINDS:
        raise ValueError(f"unknown D4RL-style dataset {kind!r}; valid ones: {list(KINDS)}")
    domain = get_domain(domain_name)
    objective(domain)  # a clear error before any training
    with torch_threads(cfg.threads):
        run = training_run(domain, episodes, steps, seed, cfg, run_name, progress, run_path)
        if kind == "medium-replay":
            dataset = run.data.select(np.arange(run.stop_transitions))
            behavior: dict[str, Any] = {"policy": "the training run up to its stop"}
        else:
            args = (domain, run.stop_policy, cfg.policy_transitions, steps, cfg.policy_noise)
            medium_rng = np.random.default_rng([seed, MEDIUM])
            dataset, returns = policy_dataset(*args, medium_rng, cfg.rollout_envs)
            behavior = _behavior("the run's stop", dataset, returns, cfg)
            if kind == "medium-expert":
                args = (domain, run.end_policy, cfg.policy_transitions, steps, cfg.policy_noise)
                end_rng = np.random.default_rng([seed, END])
                end, end_returns = policy_dataset(*args, end_rng, cfg.rollout_envs)
                end_part = _behavior(
                    "the end of the training budget (not D4RL's expert)", end, end_returns, cfg
                )
                behavior = {"medium": behavior, "end_of_budget": end_part}
                dataset = _concatenate(dataset, end)
    meta = {
        TaskAgent.name: {**asdict(cfg), "utd": cfg.utd},
        "run": run.summary,
        "behavior": behavior,
        "reward_task": objective(domain).name,
    }
    return replace(dataset, meta=meta)


def _behavior(policy: str, data: Dataset, returns: np.ndarray, cfg: OnlineConfig) -> dict:
    """What acted in a policy's dataset: which policy, its noise and its episodes' mean return."""
    return {
        "policy": policy,
        "noise": cfg.policy_noise,
        "transitions": len(data),
        "episode_return": float(returns.mean()) if len(returns) else None,
        "whole_episodes": len(returns),
    }


def _concatenate(first: Dataset, second: Dataset) -> Dataset:
    """The transitions of ``first`` then ``second``, the latter's episodes numbered after."""
    arrays = {
        name: np.concatenate([a, second.arrays()[name]]) for name, a in first.arrays().items()
    }
    arrays["episode"] = np.r_[first.episode, second.episode + first.episode.max() + 1]
    return Dataset(**arrays, meta=first.meta, step=np.r_[first.step, second.step])
