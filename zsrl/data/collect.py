"""Dataset collectors and the named-dataset cache.

Both collectors act open-loop with uniform random actions, so whole batches of episodes are simulated by
``mujoco.rollout`` (MuJoCo's own batched stepper) rather than one ``env.step`` at a time:

- ``random``: episodes from the domain's usual start distribution, like ExORL's RANDOM (spec §6.1);
- ``uniform-reset``: short episodes (10 steps) from states drawn uniformly over the free space
  (positions and velocities), a cheap dataset that covers the whole state space.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import mujoco
import numpy as np
from mujoco import rollout
from tqdm.auto import tqdm

from zsrl.data.dataset import Dataset, DatasetError, checksum_path
from zsrl.envs import Domain, get_domain
from zsrl.envs.registry import PHYSICS_STATE

FULL_STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS


@dataclass(frozen=True)
class CollectorSpec:
    """How a named dataset is made; its fields name its cache file."""

    domain: str
    collector: str
    episodes: int
    episode_steps: int
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.domain}__{self.collector}__{self.episodes}x{self.episode_steps}__seed{self.seed}"


StartFn = Callable[[Domain, np.random.Generator, int], np.ndarray]

# collector name -> (start-state sampler, default episodes, default episode length or None = the domain's)
COLLECTORS: dict[str, tuple[StartFn, int, int | None]] = {
    "random": (lambda domain, rng, n: domain.sample_start(rng, n), 100, None),
    "uniform-reset": (lambda domain, rng, n: domain.samplers["free"](rng, n), 10_000, 10),
}


def collector_names() -> list[str]:
    return sorted(COLLECTORS)


def default_spec(
    domain: str, collector: str, episodes: int | None = None, seed: int = 0
) -> CollectorSpec:
    """The spec of a named dataset, e.g. ``("point_mass_maze", "uniform-reset")``: 100k transitions."""
    if collector not in COLLECTORS:
        raise ValueError(f"unknown dataset {collector!r}; valid datasets: {collector_names()}")
    dom = get_domain(domain)
    _, default_episodes, steps = COLLECTORS[collector]
    return CollectorSpec(
        domain, collector, episodes or default_episodes, steps or dom.episode_steps, seed
    )


def _state_index(model: mujoco.MjModel, signature: int) -> np.ndarray:
    """Positions of the ``signature`` components inside a full-physics state vector."""
    full = np.arange(mujoco.mj_stateSize(model, FULL_STATE), dtype=np.float64)
    out = np.empty(mujoco.mj_stateSize(model, signature))
    mujoco.mj_extractState(model, full, FULL_STATE, out, signature)
    return out.astype(np.int64)


def collect(spec: CollectorSpec, chunk_steps: int = 10_000, progress: bool = True) -> Dataset:
    """Simulate ``spec.episodes`` open-loop episodes of uniform random actions."""
    if spec.collector not in COLLECTORS:
        raise ValueError(f"unknown dataset {spec.collector!r}; valid datasets: {collector_names()}")
    domain = get_domain(spec.domain)
    start_fn = COLLECTORS[spec.collector][0]
    model = domain.model()
    data = mujoco.MjData(model)
    physics_index = _state_index(model, PHYSICS_STATE)
    rng = np.random.default_rng(spec.seed)
    T, E = spec.episode_steps, spec.episodes
    P, A = len(physics_index), model.nu
    physics = np.empty((E, T + 1, P))  # episodes x (steps + 1) x physics state
    actions = rng.uniform(-1.0, 1.0, size=(E, T, A))  # episodes x steps x action
    chunk_episodes = max(1, chunk_steps // T)
    bar = tqdm(total=E * T, desc=f"collect {spec.name}", unit="step", disable=not progress)
    for lo in range(0, E, chunk_episodes):
        hi = min(lo + chunk_episodes, E)
        start = start_fn(domain, rng, hi - lo)  # chunk x P
        initial = np.empty((hi - lo, mujoco.mj_stateSize(model, FULL_STATE)))
        for row, state in zip(initial, start, strict=True):
            mujoco.mj_resetData(model, data)
            mujoco.mj_setState(model, data, state, PHYSICS_STATE)
            mujoco.mj_forward(model, data)
            mujoco.mj_getState(model, data, row, FULL_STATE)
        states, _ = rollout.rollout(model, data, initial, actions[lo:hi])  # chunk x T x full
        physics[lo:hi, 0] = initial[:, physics_index]
        physics[lo:hi, 1:] = states[..., physics_index]
        bar.update((hi - lo) * T)
    bar.close()
    flat_physics = physics[:, :-1].reshape(E * T, P)
    flat_next = physics[:, 1:].reshape(E * T, P)
    return Dataset(
        observation=domain.observe(flat_physics),
        action=actions.reshape(E * T, A).astype(np.float32),
        next_observation=domain.observe(flat_next),
        physics=flat_physics,
        next_physics=flat_next,
        episode=np.repeat(np.arange(E, dtype=np.int32), T),
        meta={"spec": asdict(spec), "name": spec.name},
    )


def data_dir() -> Path:
    """Where named datasets are cached: ``$ZSRL_DATA_DIR`` or ``~/.cache/zsrl/datasets``."""
    return Path(os.environ.get("ZSRL_DATA_DIR", Path.home() / ".cache" / "zsrl" / "datasets"))


def load_or_collect(
    spec: CollectorSpec, root: Path | None = None, regenerate: bool = False, progress: bool = True
) -> Dataset:
    """The cached dataset for ``spec``, collected (and checksummed) when missing or on request.

    A cached file that fails its checksum is an error, not silently replaced: pass ``regenerate``.
    """
    path = (root or data_dir()) / f"{spec.name}.npz"
    if path.exists() and not regenerate:
        if not checksum_path(path).exists():
            raise DatasetError(f"dataset file {path} has no checksum file; regenerate it")
        dataset = Dataset.load(path)
    else:
        dataset = collect(spec, progress=progress)
        dataset.save(path)
    return dataset.with_meta(path=str(path), sha256=checksum_path(path).read_text().split()[0])
