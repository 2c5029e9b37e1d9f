"""Dataset collectors and the named-dataset cache.

The two open-loop collectors act with uniform random actions, so whole batches of episodes are
simulated by ``mujoco.rollout`` (MuJoCo's own batched stepper) rather than one ``env.step`` at a time
(on a domain with terminal states, each episode only until its first, one after another):

- ``random``: episodes from the domain's usual start distribution, like ExORL's RANDOM (reference: ref-exorl);
- ``uniform-reset``: short episodes (10 steps) from states drawn uniformly over the free space
  (positions and velocities), a cheap dataset that covers the whole state space.

The others are closed-loop: episodes from the start distribution, acted by an online agent trained on
an intrinsic reward only (:mod:`zsrl.data.explorer`). Two explore with a random network distillation
reward (:mod:`zsrl.data.rnd`), like ExORL's RND:

- ``rnd``: the paper's way. One long exploration (1M transitions at the ``book`` scale; ExORL's runs
  are about 10M), collected once, resumably, and cached; the paper's RND-100k (and 1k, 10k) are
  uniform subsamples of it with their own fixed seed (``data.n_transitions``, ``data.subsample_seed``);
- ``rnd-short``: the whole of a short exploration (100k transitions), the project's first RND data.
  Most of it stays in the start room, so it is not the paper's RND-100k; kept for the results made
  with it before (those records name it ``rnd``, see the changelog).

- ``diayn``: skill discovery (:mod:`zsrl.data.diayn`), like ExORL's DIAYN: 100k transitions of an
  agent learning 16 skills that a discriminator tells apart; each transition's skill is in the meta.
  Resumable like ``rnd``.

Three more, D4RL's way (:mod:`zsrl.data.medium`), come from one online agent trained on the task's
own reward, on the domains whose one task is their objective (the Gymnasium domains):

- ``medium``: the policy stopped when its return first reaches a third of D4RL's expert return;
- ``medium-replay``: that training run's transitions up to the stop;
- ``medium-expert``: ``medium`` followed by as much of the policy at the end of the training budget,
  which is not D4RL's expert. The three share one cached, resumable training run.

All the closed-loop collectors take their hyperparameters from named scales (``book``, the default,
and ``quick`` for tests).

On a domain with terminal states (Gymnasium's Walker2d) every episode ends at its first terminal
state: the dataset marks that transition ``terminal`` and the last transition of every other
episode ``truncation``. The open-loop collectors step each episode until that state and cut it
there, so their datasets hold fewer transitions than episodes × steps; the explorers start the next
episode in the same lane at once and keep stepping (:mod:`zsrl.data.explorer`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import mujoco
import numpy as np
from mujoco import rollout
from tqdm import tqdm

from zsrl.data import diayn, medium, rnd
from zsrl.data.dataset import Dataset, DatasetError
from zsrl.data.episodes import steps_until_terminal
from zsrl.data.explorer import Explorer, ExplorerConfig, explore
from zsrl.envs import BatchSim, Domain, domain_names, get_domain
from zsrl.envs.registry import PHYSICS_STATE
from zsrl.io import checksum_path, stored_checksum

FULL_STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS


@dataclass(frozen=True)
class CollectorSpec:
    """How a named dataset is made; its fields name its cache file.

    A collector with hyperparameters adds the first 8 hex digits of their hash to the name, so a
    change of its scale's settings makes a new file instead of reusing data made another way. On a
    domain with terminal states the hash also covers that the explorers end episodes there (they
    did not before), so their earlier files are not reused either.
    """

    domain: str
    collector: str
    episodes: int
    episode_steps: int
    seed: int = 0
    scale: str | None = None  # the collector's hyperparameter set, for collectors that have them

    @property
    def name(self) -> str:
        collector = self.collector
        if self.scale is not None:
            config = asdict(get_collector(self.collector).scales[self.scale])
            if get_domain(self.domain).terminated is not None:
                config["episodes_end_at_terminals"] = True
            digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
            collector = f"{collector}-{self.scale}-{digest[:8]}"
        return f"{self.domain}__{collector}__{self.episodes}x{self.episode_steps}__seed{self.seed}"


StartFn = Callable[[Domain, np.random.Generator, int], np.ndarray]
CollectFn = Callable[..., Dataset]  # (spec, progress[, checkpoint]) -> dataset


@dataclass(frozen=True)
class Collector:
    """A named recipe for a dataset."""

    collect: CollectFn  # (spec, progress) -> dataset; resumable ones also take a checkpoint path
    # Default number of episodes (of the default scale, when there are scales). Where episodes are
    # the domain's own length, it counts episodes of REFERENCE_EPISODE_STEPS steps: a domain with
    # shorter ones (jaco's 250) gets proportionally more, so a default holds as many transitions
    # on every domain (100k for ``random``: the paper's 100k datasets, reference: ref-subsets).
    episodes: int
    episode_steps: int | None = None  # None: the domain's episode length
    scales: Mapping[str, ExplorerConfig] = field(default_factory=dict)  # first: the default
    resumable: bool = False  # keeps its progress in a checkpoint file and continues from it
    sampler: str | None = None  # a named state sampler the domain must have (None: its starts)
    # the domain must have one task that is its objective, with D4RL's reference returns
    objective: bool = False
    # its episodes end at a domain's first terminal state, so their length is the simulation's
    # (the open-loop collectors; the explorers start a fresh episode in the lane and keep stepping)
    cut_at_terminals: bool = False
    # the transitions of a spec's dataset where the collector fixes them otherwise than as episodes
    # x steps (D4RL-style data); None where only the collection tells
    size: Callable[[CollectorSpec], int | None] | None = None

    def transitions(self, spec: CollectorSpec) -> int | None:
        """How many transitions ``spec``'s dataset holds, where that is known before collecting it:
        what the collector fixes (``size``), else its episodes times their steps. None where
        episodes are cut at terminal states (random walker2d data: falls within tens of steps) or
        where the size is the collection's outcome (``medium-replay``)."""
        if self.size is not None:
            return self.size(spec)
        if self.cut_at_terminals and get_domain(spec.domain).terminated is not None:
            return None
        return spec.episodes * spec.episode_steps

    def supports(self, domain: Domain) -> bool:
        if self.objective and not medium.has_objective(domain):
            return False
        return self.sampler is None or self.sampler in domain.samplers

    def requirement(self) -> str:
        """What a domain needs for this collector, in words."""
        needs = [f"the {self.sampler!r} state sampler"] if self.sampler else []
        if self.objective:
            needs.append("one task that is its objective, with D4RL's reference returns")
        return " and ".join(needs) or "nothing"


def _collect_open_loop(
    start_fn: StartFn, spec: CollectorSpec, progress: bool = True, chunk_steps: int = 10_000
) -> Dataset:
    """Simulate ``spec.episodes`` open-loop episodes of uniform random actions from ``start_fn``."""
    domain = get_domain(spec.domain)
    model = domain.model()
    data = mujoco.MjData(model)
    physics_index = _state_index(model, PHYSICS_STATE)
    rng = np.random.default_rng(spec.seed)
    T, E = spec.episode_steps, spec.episodes
    P, A = len(physics_index), model.nu
    physics = np.empty((E, T + 1, P))  # episodes x (steps + 1) x physics state
    actions = rng.uniform(-1.0, 1.0, size=(E, T, A))  # episodes x steps x action
    # rollout's output (chunk x kT x full state) bounds a chunk; stepping to terminals keeps only
    # chunk x T physics states, so it takes every episode at once
    chunk_episodes = E if domain.terminated is not None else max(1, chunk_steps // T)
    bar = tqdm(total=E * T, desc=f"collect {spec.name}", unit="step", disable=not progress)
    for lo in range(0, E, chunk_episodes):
        hi = min(lo + chunk_episodes, E)
        start = start_fn(domain, rng, hi - lo)  # chunk x P
        if domain.terminated is not None:
            physics[lo:hi, 0] = start
            physics[lo:hi, 1:] = _step_until_terminal(domain, start, actions[lo:hi])
        else:
            initial = np.empty((hi - lo, mujoco.mj_stateSize(model, FULL_STATE)))
            for row, state in zip(initial, start, strict=True):
                mujoco.mj_resetData(model, data)
                mujoco.mj_setState(model, data, state, PHYSICS_STATE)
                mujoco.mj_forward(model, data)
                mujoco.mj_getState(model, data, row, FULL_STATE)
            physics[lo:hi, 0] = initial[:, physics_index]
            k = domain.physics_steps  # each control is held for k MuJoCo steps
            controls = np.repeat(actions[lo:hi], k, axis=1) if k > 1 else actions[lo:hi]
            states, _ = rollout.rollout(model, data, initial, controls)  # chunk x kT x full
            physics[lo:hi, 1:] = states[:, k - 1 :: k][..., physics_index]  # after each step
        bar.update((hi - lo) * T)
    bar.close()
    meta = {"spec": asdict(spec), "name": spec.name}
    if domain.terminated is not None:
        return _cut_at_terminals(domain, physics, actions, meta)
    flat_physics = physics[:, :-1].reshape(E * T, P)
    flat_next = physics[:, 1:].reshape(E * T, P)
    return Dataset(
        observation=domain.observe(flat_physics),
        action=actions.reshape(E * T, A).astype(np.float32),
        next_observation=domain.observe(flat_next),
        physics=flat_physics,
        next_physics=flat_next,
        episode=np.repeat(np.arange(E, dtype=np.int32), T),
        meta=meta,
    )


def _step_until_terminal(domain: Domain, start: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The physics states (n x T x P) after each of ``actions`` (n x T x A) from ``start`` (n x P),
    each episode stepped only until its first terminal state and its last state repeated after.

    Random walkers fall within tens of steps, so simulating whole episodes (as ``mujoco.rollout``
    does) would spend nearly all of the time on steps that are then cut. Episodes are stepped one
    after the other in one ``MjData``, reset before each (so each starts as a fresh copy would, and
    keeps its solver's warm start from step to step, as the environment's own ``step`` does).
    """
    n, T, _ = actions.shape
    sim = BatchSim(domain, 1)
    data = sim.datas[0]
    out = np.empty((n, T, sim.state_size))  # n x T x P
    for i in range(n):
        sim.set_states(start[i : i + 1])
        for t in range(T):
            data.ctrl[:] = actions[i, t]
            mujoco.mj_step(sim.model, data, nstep=domain.physics_steps)
            mujoco.mj_getState(sim.model, data, out[i, t], PHYSICS_STATE)
            if domain.terminated(out[i, t : t + 1])[0]:
                out[i, t + 1 :] = out[i, t]
                break
    return out


def _cut_at_terminals(
    domain: Domain, physics: np.ndarray, actions: np.ndarray, meta: dict
) -> Dataset:
    """The dataset of whole simulated episodes (physics E x T+1 x P, actions E x T x A) on a domain
    with terminal states, each episode ending at its first: ``terminal`` marks that step, and
    ``truncation`` the last step of an episode the time limit ended instead."""
    done = domain.terminated(physics[:, 1:])  # E x T
    keep = steps_until_terminal(done)  # E x T
    E, T = keep.shape
    flat_physics = physics[:, :-1][keep]  # n x P
    flat_next = physics[:, 1:][keep]  # n x P
    terminal = done[keep]  # n
    episode = np.repeat(np.arange(E, dtype=np.int32), T).reshape(E, T)[keep]  # n
    last = np.r_[episode[1:] != episode[:-1], True]  # n: the episode's last kept step
    return Dataset(
        observation=domain.observe(flat_physics),
        action=actions[keep].astype(np.float32),
        next_observation=domain.observe(flat_next),
        physics=flat_physics,
        next_physics=flat_next,
        episode=episode,
        terminal=terminal,
        truncation=last & ~terminal,
        meta=meta,
    )


def _collect_online(
    agent_class: type[Explorer],
    scales: Mapping[str, ExplorerConfig],
    spec: CollectorSpec,
    progress: bool = True,
    checkpoint: Path | None = None,
) -> Dataset:
    """Explore with an online agent (:class:`~zsrl.data.rnd.RNDAgent`,
    :class:`~zsrl.data.diayn.DIAYNAgent`) at ``spec.scale`` of ``scales``, resumably with
    ``checkpoint``."""
    assert spec.scale is not None  # checked by collect()
    dataset, _ = explore(
        get_domain(spec.domain),
        spec.episodes,
        spec.episode_steps,
        spec.seed,
        scales[spec.scale],
        agent_class,
        progress=progress,
        desc=f"collect {spec.name}",
        checkpoint=checkpoint,
    )
    return dataset.with_meta(spec=asdict(spec), name=spec.name)


def _collect_d4rl_style(
    kind: str, spec: CollectorSpec, progress: bool = True, checkpoint: Path | None = None
) -> Dataset:
    """The ``kind`` D4RL-style dataset (:mod:`zsrl.data.medium`) at ``spec.scale``. The training run
    the three share is named after the ``medium`` dataset and kept beside ``checkpoint``
    (``NAME.run.pt``), where it outlives the dataset's own collection; without ``checkpoint`` it is
    trained in memory."""
    assert spec.scale is not None  # checked by collect()
    run = replace(spec, collector="medium")  # one run for the three: medium's spec names it
    run_path = None if checkpoint is None else Path(checkpoint).with_name(f"{run.name}.run.pt")
    cfg = medium.SCALES[spec.scale]
    dataset = medium.collect(
        kind,
        spec.domain,
        spec.episodes,
        spec.episode_steps,
        spec.seed,
        cfg,
        run.name,
        progress=progress,
        run_path=run_path,
    )
    return dataset.with_meta(spec=asdict(spec), name=spec.name)


def _d4rl_style_size(kind: str, spec: CollectorSpec) -> int | None:
    """The size of a D4RL-style ``kind`` dataset at the spec's scale (:func:`default_spec` names
    one; a spec without one is at the default, the first)."""
    _check_scale(kind, spec.scale)
    return medium.dataset_transitions(kind, medium.SCALES[spec.scale or next(iter(medium.SCALES))])


COLLECTORS: dict[str, Collector] = {
    "random": Collector(
        partial(_collect_open_loop, lambda domain, rng, n: domain.sample_start(rng, n)),
        100,
        cut_at_terminals=True,
    ),
    "uniform-reset": Collector(
        partial(_collect_open_loop, lambda domain, rng, n: domain.sampler("free")(rng, n)),
        10_000,
        10,
        sampler="free",
        cut_at_terminals=True,
    ),
    "rnd": Collector(
        partial(_collect_online, rnd.RNDAgent, rnd.LONG_SCALES),
        rnd.LONG_SCALES["book"].episodes,
        scales=rnd.LONG_SCALES,
        resumable=True,
    ),
    "rnd-short": Collector(
        partial(_collect_online, rnd.RNDAgent, rnd.SCALES),
        rnd.SCALES["book"].episodes,
        scales=rnd.SCALES,
    ),
    "diayn": Collector(
        partial(_collect_online, diayn.DIAYNAgent, diayn.SCALES),
        diayn.SCALES["book"].episodes,
        scales=diayn.SCALES,
        resumable=True,
    ),
    **{
        kind: Collector(
            partial(_collect_d4rl_style, kind),
            medium.SCALES["book"].episodes,
            scales=medium.SCALES,
            resumable=True,
            objective=True,
            size=partial(_d4rl_style_size, kind),
        )
        for kind in medium.KINDS
    },
}


def collector_names(domain: str | None = None) -> list[str]:
    """Every collector, or those that can collect on ``domain``."""
    if domain is None:
        return sorted(COLLECTORS)
    dom = get_domain(domain)
    return sorted(name for name, recipe in COLLECTORS.items() if recipe.supports(dom))


def get_collector(name: str) -> Collector:
    if name not in COLLECTORS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {collector_names()}")
    return COLLECTORS[name]


def _check_scale(collector: str, scale: str | None) -> None:
    scales = list(get_collector(collector).scales)
    if scale is not None and scale not in scales:
        valid = f"valid scales: {scales}" if scales else "it has no scales"
        raise ValueError(f"unknown scale {scale!r} for dataset {collector!r}; {valid}")


REFERENCE_EPISODE_STEPS = 1_000  # the episode length that collectors' default episodes count


def default_spec(
    domain: str,
    collector: str,
    episodes: int | None = None,
    seed: int = 0,
    scale: str | None = None,
) -> CollectorSpec:
    """The spec of a named dataset, e.g. ``("point_mass_maze", "uniform-reset")``: 100k transitions.

    A collector with scales (``rnd``) takes its default scale unless ``scale`` names another, and its
    default number of episodes from that scale. Default episodes of the domain's own length count
    episodes of :data:`REFERENCE_EPISODE_STEPS` steps, so ``random`` on jaco (250-step episodes) is
    400 episodes: 100k transitions, as on every other domain.
    """
    recipe = get_collector(collector)
    _check_scale(collector, scale)
    dom = get_domain(domain)
    check_supports(collector, dom)
    if recipe.scales:
        scale = scale or next(iter(recipe.scales))
        default_episodes = recipe.scales[scale].episodes
    else:
        default_episodes = recipe.episodes
    steps = recipe.episode_steps or dom.episode_steps
    if recipe.episode_steps is None:  # defaults count episodes of REFERENCE_EPISODE_STEPS steps
        default_episodes = -(-default_episodes * REFERENCE_EPISODE_STEPS // steps)  # rounded up
    return CollectorSpec(domain, collector, episodes or default_episodes, steps, seed, scale)


def check_supports(collector: str, domain: Domain) -> None:
    """A collector the domain cannot run is a ValueError naming what it needs and where it runs."""
    recipe = get_collector(collector)
    if not recipe.supports(domain):
        supported = [name for name in domain_names() if recipe.supports(get_domain(name))]
        raise ValueError(
            f"dataset {collector!r} needs {recipe.requirement()}, which domain {domain.name!r} "
            f"lacks; it supports domains {supported}; {domain.name!r}'s datasets: "
            f"{collector_names(domain.name)}"
        )


def _state_index(model: mujoco.MjModel, signature: int) -> np.ndarray:
    """Positions of the ``signature`` components inside a full-physics state vector."""
    full = np.arange(mujoco.mj_stateSize(model, FULL_STATE), dtype=np.float64)
    out = np.empty(mujoco.mj_stateSize(model, signature))
    mujoco.mj_extractState(model, full, FULL_STATE, out, signature)
    return out.astype(np.int64)


def collect(spec: CollectorSpec, progress: bool = True, checkpoint: Path | None = None) -> Dataset:
    """Make the dataset of ``spec`` with its collector (no caching: see :func:`load_or_collect`).

    A resumable collector keeps its progress in ``checkpoint`` and continues from it; the others
    ignore it.
    """
    recipe = get_collector(spec.collector)
    _check_scale(spec.collector, spec.scale)
    check_supports(spec.collector, get_domain(spec.domain))
    if recipe.scales and spec.scale is None:
        raise ValueError(
            f"dataset {spec.collector!r} needs a scale; valid scales: {list(recipe.scales)}"
        )
    if recipe.resumable:
        return recipe.collect(spec, progress, checkpoint)
    return recipe.collect(spec, progress)


def data_dir() -> Path:
    """Where named datasets are cached: ``$ZSRL_DATA_DIR`` or ``~/.cache/zsrl/datasets``."""
    return Path(os.environ.get("ZSRL_DATA_DIR", Path.home() / ".cache" / "zsrl" / "datasets"))


def load_or_collect(
    spec: CollectorSpec, root: Path | None = None, regenerate: bool = False, progress: bool = True
) -> Dataset:
    """The cached dataset for ``spec``, collected (and checksummed) when missing or on request.

    A cached file that fails its checksum is an error, not silently replaced: pass ``regenerate``.
    A resumable collector (``rnd``) keeps its progress beside the file (``NAME.partial.pt``): an
    interrupted collection continues where it stopped, and the file goes once the dataset is saved.
    The D4RL-style collectors keep their shared training run there too (``RUN.run.pt``), and it
    stays: ``regenerate`` remakes the dataset from it (delete it to train again).
    """
    path = (root or data_dir()) / f"{spec.name}.npz"
    partial_path = path.with_name(f"{spec.name}.partial.pt")
    for stale in path.parent.glob(f".{spec.name}.*.tmp"):  # writes of this dataset cut short
        stale.unlink(missing_ok=True)
    if path.exists() and not regenerate:
        if not checksum_path(path).exists():
            raise DatasetError(f"dataset file {path} has no checksum file; regenerate it")
        dataset = Dataset.load(path)
    else:
        if regenerate:
            partial_path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        dataset = collect(spec, progress=progress, checkpoint=partial_path)
        dataset.save(path)
        partial_path.unlink(missing_ok=True)
    return dataset.with_meta(path=str(path), sha256=stored_checksum(path))
