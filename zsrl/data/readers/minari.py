"""Minari datasets: read a local Minari dataset as a :class:`Dataset`, and write one of ours as one.

A Minari dataset (Farama's successor of D4RL) lives in a directory of the local Minari root
(``$MINARI_DATASETS_PATH``, by default ``~/.minari/datasets``) named after its id, e.g.
``mujoco/walker2d/medium-v0``; the directory's ``data/`` folder holds ``metadata.json`` (the
observation and action spaces, the Gymnasium env spec it was recorded on) and the episodes. An
episode of T steps holds

- ``observations`` (T+1, O): s_0 .. s_T, the reset's observation first;
- ``actions``, ``rewards``, ``terminations``, ``truncations`` (T each): a_t, r_t, whether s_{t+1}
  ends the episode (no bootstrapping from it) and whether a time limit cut it after step t;
- ``infos``: whatever the recording kept; Minari's own collector keeps T+1 rows (reset first).

So step t becomes the transition (observations[t], actions[t], observations[t+1]) with ``terminal``
and ``truncation`` from the flags and the episode's Minari id as its episode id. Observations are
all Minari stores of the state; where ``infos`` hold the physics states too (``physics``, the
domain's ``mjSTATE_PHYSICS`` vectors, as :func:`write_minari` stores them, or ``qpos`` and ``qvel``
for a model without actuator activations), they are kept, so the data are relabelled for every task
as our own are, after checking that the domain observes them as the stored observations. Otherwise
the dataset holds the rewards of one task (``meta["reward_task"]``), as a D4RL file does: the task
:func:`write_minari` recorded, else the domain's only task (a Gymnasium environment defines one
reward), else the task the run names.

The env spec names the environment (``Walker2d-v5``); :data:`MINARI_DOMAINS` maps its name to a zsrl
domain. Minari's reader (``minari.MinariDataset``) does the reading; ``minari`` is imported only
when a Minari dataset is read or written.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zsrl.config import RunConfig
from zsrl.data.dataset import Dataset, DatasetError
from zsrl.data.readers.common import action_box, check_arrays, observe_check
from zsrl.data.sources import register_source
from zsrl.envs import get_domain
from zsrl.envs.registry import BatchSim

# The zsrl domain of each Gymnasium environment whose Minari datasets we read, by the environment's
# name (its env spec id less namespace and version: "Walker2d-v5" -> "Walker2d").
MINARI_DOMAINS: dict[str, str] = {
    "Walker2d": "walker2d",
    "HalfCheetah": "halfcheetah",
}
METADATA_KEY = "zsrl"  # the key of write_minari's own entry in a dataset's metadata.json
DATA_FOLDER = "data"  # a Minari dataset directory's folder of metadata and episodes
METADATA_FILE = "metadata.json"


def _minari() -> Any:
    """The ``minari`` package; a clear error where it is not installed."""
    try:
        import minari
    except ImportError:
        raise DatasetError(
            "reading or writing Minari datasets needs minari (Python 3.11+): "
            "pip install 'minari==0.5.4'"
        ) from None
    return minari


def env_domain(env_id: str) -> str:
    """The zsrl domain of the Gymnasium environment ``env_id`` ("Walker2d-v5" -> "walker2d")."""
    from gymnasium.envs.registration import parse_env_id

    name = parse_env_id(env_id)[1]
    if name not in MINARI_DOMAINS:
        raise ValueError(
            f"no zsrl domain for environment {env_id!r}; known environments: "
            f"{sorted(MINARI_DOMAINS)}"
        )
    return MINARI_DOMAINS[name]


def _warn_of_version(env_id: str, domain: str, label: str) -> None:
    """A warning where data of a Gymnasium MuJoCo environment (of :data:`MINARI_DOMAINS`) were
    recorded on another version than v5, the one the ``walker2d`` and ``halfcheetah`` domains
    simulate."""
    from gymnasium.envs.registration import parse_env_id

    version = parse_env_id(env_id)[2]
    if version not in (None, 5):
        warnings.warn(
            f"Minari dataset {label!r} was recorded on {env_id}, but domain {domain!r} simulates "
            "its v5, which changed some models and rewards (Walker2d's right foot has the left "
            "one's friction, 1.9 for 0.9, and its healthy reward is paid only while healthy), so "
            "the data's dynamics and stored rewards may differ slightly from ours",
            stacklevel=3,
        )


def minari_root() -> Path:
    """The local Minari root, where datasets are found by id (``$MINARI_DATASETS_PATH``)."""
    return Path(_minari().storage.get_dataset_path())


def minari_data_dir(source: str | Path) -> Path:
    """The ``data/`` folder of a Minari dataset, given its directory (or that ``data/`` folder)
    or its id in the local Minari root."""
    path = Path(source).expanduser()
    for folder in (path / DATA_FOLDER, path):
        if (folder / METADATA_FILE).is_file():
            return folder
    by_id = minari_root() / str(source) / DATA_FOLDER
    if (by_id / METADATA_FILE).is_file():
        return by_id
    with warnings.catch_warnings():  # minari warns of each misconfigured dataset it passes
        warnings.simplefilter("ignore")
        local = sorted(_minari().list_local_datasets())
    raise DatasetError(
        f"Minari dataset {str(source)!r} is neither a dataset directory nor a dataset id in the "
        f"local Minari root {str(minari_root())!r} (set MINARI_DATASETS_PATH); local datasets: "
        f"{local}"
    )


def _data_digest(folder: Path) -> str:
    """SHA-256 over the files of a dataset's ``data/`` folder (names and contents), leaving out
    ``metadata.json``, which Minari rewrites as it updates the dataset's size."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != METADATA_FILE):
        digest.update(file.relative_to(folder).as_posix().encode())
        with open(file, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _episodes(dataset: Any, label: str) -> Iterator[Any]:
    """The episodes of a ``MinariDataset``; a missing or unreadable array names its episode."""
    episodes = iter(dataset.iterate_episodes())
    index = 0
    while True:
        try:
            episode = next(episodes)
        except StopIteration:
            return
        except KeyError as error:
            raise DatasetError(
                f"Minari dataset {label!r}: episode {index} lacks an array ({error})"
            ) from None
        except (OSError, ValueError, TypeError) as error:
            raise DatasetError(
                f"Minari dataset {label!r}: episode {index} is unreadable ({error})"
            ) from None
        yield episode
        index += 1


def _infos_states(episode: Any) -> np.ndarray | None:
    """The physics states an episode's infos hold (rows x P: ``physics``, or ``qpos`` and
    ``qvel`` side by side), or None where they hold neither."""
    infos = episode.infos or {}
    if "physics" in infos:
        return np.asarray(infos["physics"], dtype=np.float64)
    if "qpos" in infos and "qvel" in infos:
        qpos, qvel = np.asarray(infos["qpos"]), np.asarray(infos["qvel"])  # rows x nq, rows x nv
        if qpos.ndim == 2 and qvel.ndim == 2 and len(qpos) == len(qvel):
            return np.concatenate([qpos, qvel], axis=1).astype(np.float64)
        return np.empty((0, 0))  # present but not states of one shape
    return None


def read_minari(
    source: str | Path,
    domain: str | None = None,
    reward_task: str | None = None,
    name: str | None = None,
) -> Dataset:
    """The transitions of the Minari dataset ``source`` (its id in the local Minari root, or its
    directory; see the module docstring).

    ``domain`` is the run's: it must be the one the dataset's environment maps to (when it names
    one). ``reward_task`` is the task the run names; without physics states the stored rewards are
    those of the task the dataset records (or the domain's only task), and a run naming another is
    an error. ``meta`` holds the name (by default the dataset id), the path of the ``data/`` folder,
    a SHA-256 of its episode files, ``source: "minari"``, the dataset id, the environment, the
    numbers of episodes and transitions, the reward task, where the physics states came from
    (``physics``: ``"infos"`` or None) and, with them, ``observe_check``.
    """
    label = str(source)
    folder = minari_data_dir(source)
    minari = _minari()
    try:
        data = minari.MinariDataset(folder)
    except KeyError as error:
        raise DatasetError(f"Minari dataset {label!r}: its {METADATA_FILE} lacks {error}") from None
    except (ValueError, OSError, TypeError, AssertionError) as error:
        raise DatasetError(f"Minari dataset {label!r} is unreadable: {error}") from None
    recorded = data.storage.metadata.get(METADATA_KEY) or {}  # write_minari's entry, if any
    env = data.env_spec.id if data.env_spec is not None else None

    # the domain: the environment's (or the one write_minari recorded), checked against the run's
    if env is not None:
        try:
            own_domain = env_domain(env)
        except ValueError as error:
            raise DatasetError(f"Minari dataset {label!r}: {error}") from None
        _warn_of_version(env, own_domain, label)
    else:
        own_domain = recorded.get("domain")
    if domain is not None and own_domain is not None and domain != own_domain:
        raise DatasetError(
            f"Minari dataset {label!r} holds data of domain {own_domain!r}"
            + (f" (environment {env})" if env else "")
            + f", not of the run's domain {domain!r}"
        )
    domain = domain or own_domain
    if domain is None:
        raise DatasetError(
            f"Minari dataset {label!r} names no environment: give the domain it is for (--domain)"
        )
    try:
        dom = get_domain(domain)
    except ValueError as error:
        raise DatasetError(f"Minari dataset {label!r}: {error}") from None

    # the spaces: flat boxes of the domain's widths
    from gymnasium.spaces import Box

    for what, space, width in (
        ("observation", data.observation_space, dom.obs_dim),
        ("action", data.action_space, dom.action_dim),
    ):
        if not isinstance(space, Box) or space.shape != (width,):
            raise DatasetError(
                f"Minari dataset {label!r}: its {what} space is {space}, but domain {domain!r} "
                f"has {what}s of width {width} (data of another domain?)"
            )
    physics_size = BatchSim(dom, 1).state_size  # P
    box = action_box(dom)

    obs, next_obs, actions, rewards, terminal, truncation, episode = [], [], [], [], [], [], []
    states: list[np.ndarray] = []  # T+1 x P per episode, while every episode has them
    unfit: list[int] = []  # episodes whose infos hold no states of the domain's shape
    offered = False  # whether any episode's infos hold states at all
    for ep in _episodes(data, label):
        observations = np.asarray(ep.observations)  # T+1 x O
        steps = len(ep.rewards)  # T
        shapes = {
            "observations": (observations.shape, (steps + 1, dom.obs_dim)),
            "actions": (np.shape(ep.actions), (steps, dom.action_dim)),
            "rewards": (np.shape(ep.rewards), (steps,)),
            "terminations": (np.shape(ep.terminations), (steps,)),
            "truncations": (np.shape(ep.truncations), (steps,)),
        }
        for key, (shape, expected) in shapes.items():
            if shape != expected:
                raise DatasetError(
                    f"Minari dataset {label!r}: episode {ep.id}'s {key} have shape {shape}, "
                    f"expected {expected} ({steps} steps of domain {domain!r})"
                )
        action = np.asarray(ep.actions)  # T x A
        check_arrays(
            f"Minari dataset {label!r}: episode {ep.id}",
            {"observations": observations, "rewards": np.asarray(ep.rewards)},
            action,
            box,
        )
        if steps == 0:
            continue  # a reset without a step holds no transition
        obs.append(observations[:-1])  # T x O: s_t
        next_obs.append(observations[1:])  # T x O: s_{t+1}
        actions.append(action)
        rewards.append(np.asarray(ep.rewards))  # T
        terminal.append(np.asarray(ep.terminations, dtype=bool))  # T
        truncation.append(np.asarray(ep.truncations, dtype=bool))  # T
        episode.append(np.full(steps, ep.id, dtype=np.int32))  # T
        rows = _infos_states(ep)  # T+1 x P, or None
        offered = offered or rows is not None
        if rows is not None and rows.shape == (steps + 1, physics_size):
            states.append(rows)
        else:
            unfit.append(int(ep.id))
    if not obs:
        raise DatasetError(f"Minari dataset {label!r} holds no transition")

    observation = np.concatenate(obs).astype(np.float32)  # n x O
    next_observation = np.concatenate(next_obs).astype(np.float32)  # n x O
    physics = next_physics = None
    check = None
    if not unfit:
        physics = np.concatenate([s[:-1] for s in states])  # n x P
        next_physics = np.concatenate([s[1:] for s in states])  # n x P
        check = observe_check(dom, next_physics, next_observation, f"Minari dataset {label!r}")
    elif offered:
        warnings.warn(
            f"Minari dataset {label!r}: the infos of episodes {unfit[:5]}"
            + ("..." if len(unfit) > 5 else "")
            + f" hold no physics states of domain {domain!r} (T+1 rows of width {physics_size}); "
            "read without physics states",
            stacklevel=2,
        )

    # the task of the stored rewards
    own_task = recorded.get("reward_task") or (
        next(iter(dom.tasks)) if len(dom.tasks) == 1 else None
    )
    if physics is None and own_task and reward_task and reward_task != own_task:
        raise DatasetError(
            f"Minari dataset {label!r} holds the rewards of task {own_task!r} and no physics "
            f"states to relabel them for task {reward_task!r}"
        )
    task = own_task or reward_task
    if physics is None and task is None:
        raise DatasetError(
            f"Minari dataset {label!r} holds the rewards of one task and no physics states to "
            f"relabel them: name the task they are for (--tasks NAME); domain {domain!r}'s tasks: "
            f"{sorted(dom.tasks)}"
        )
    episodes = np.concatenate(episode)  # n
    return Dataset(
        observation=observation,
        action=np.concatenate(actions).astype(np.float32),  # n x A
        next_observation=next_observation,
        physics=physics,
        next_physics=next_physics,
        episode=episodes,
        reward=np.concatenate(rewards).astype(np.float32) if task else None,  # n
        terminal=np.concatenate(terminal),  # n
        truncation=np.concatenate(truncation),  # n
        meta={
            "name": name or data.id,
            "path": str(folder),
            "sha256": _data_digest(folder),
            "source": "minari",
            "dataset_id": data.id,
            "env": env,
            "domain": domain,
            "episodes": len(np.unique(episodes)),
            "transitions": len(episodes),
            "reward_task": task,
            "physics": "infos" if physics is not None else None,
            **({"observe_check": check} if check is not None else {}),
        },
    )


def _whole_episodes(dataset: Dataset) -> list[np.ndarray]:
    """The rows of each episode of ``dataset`` in time order, the episodes in the order they first
    appear; an episode that is not whole (steps 0 .. T-1, each transition starting where the one
    before ended) is an error, since a Minari episode is one unbroken run from its reset."""
    _, first, inverse = np.unique(dataset.episode, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))[inverse]  # n: the episode's order of appearance
    order = np.lexsort((dataset.step, rank))  # n: rows by episode, then by step
    rank, step = rank[order], dataset.step[order]  # n each
    start = np.r_[True, rank[1:] != rank[:-1]]  # n: the first row of an episode
    same = ~start[1:]  # n-1: row i+1 continues row i's episode
    broken = start & (step != 0)  # n: a row that does not continue its episode's last
    broken[1:] |= same & (step[1:] != step[:-1] + 1)
    pairs = [(dataset.observation, dataset.next_observation)]
    if dataset.physics is not None:
        pairs.append((dataset.physics, dataset.next_physics))
    for now, after in pairs:  # each transition starts where the one before it ended
        jump = np.any(now[order[1:]] != after[order[:-1]], axis=1)  # n-1
        broken[1:] |= same & jump
    if broken.any():
        episode = int(dataset.episode[order[np.argmax(broken)]])
        raise DatasetError(
            f"dataset {dataset.meta.get('name', '')!r}: episode {episode} is not whole (a "
            "subsample or filtered data?); a Minari dataset stores whole episodes"
        )
    return np.split(order, np.flatnonzero(start)[1:])


def write_minari(
    dataset: Dataset,
    dataset_id: str,
    domain: str | None = None,
    task: str | None = None,
    description: str | None = None,
) -> Path:
    """Write ``dataset`` (whole episodes) as the Minari dataset ``dataset_id`` in the local Minari
    root; return its directory. Reading it back with :func:`read_minari` gives the same
    observations, actions, next observations, episodes (numbered 0, 1, ... in the order they
    first appear), terminals, truncations and physics states.

    ``domain`` defaults to the one the dataset was collected on (``meta["spec"]``). Spaces are the
    domain's: observations a float32 box of its width, actions its action box
    (:func:`zsrl.data.readers.common.action_box`: [-1, 1] widened to its actuators' control
    ranges). The rewards are ``task``'s (computed from the physics states or the stored ones), by
    default the dataset's stored rewards or those of the domain's only task. Terminals and
    truncations are the dataset's; data without them (our collectors' episodes, which end at a time
    limit) are written as Gymnasium would log them, no termination and a truncation at each
    episode's last step. Physics states go into each episode's infos (``physics``, T+1 rows), and
    the domain and reward task into the dataset's metadata (``zsrl``), where :func:`read_minari`
    finds them. Written with ``minari.create_dataset_from_buffers`` from whole episode buffers, so
    episodes are stored as they are.
    """
    minari = _minari()
    from gymnasium.spaces import Box
    from minari.data_collector import EpisodeBuffer

    name = dataset.meta.get("name", "")
    domain = domain or (dataset.meta.get("spec") or {}).get("domain")
    if domain is None:
        raise ValueError(f"dataset {name!r} names no domain: give the domain it is of")
    dom = get_domain(domain)
    for what, array, width in (
        ("observation", dataset.observation, dom.obs_dim),
        ("action", dataset.action, dom.action_dim),
    ):
        if array.shape[1] != width:
            raise ValueError(
                f"dataset {name!r}: {what}s have width {array.shape[1]}, but domain {domain!r} "
                f"has {what}s of width {width}"
            )
    if task is None:
        task = dataset.meta.get("reward_task") if dataset.reward is not None else None
        task = task or (next(iter(dom.tasks)) if len(dom.tasks) == 1 else None)
    if task is None:
        raise ValueError(
            f"dataset {name!r} holds no stored rewards: name the task whose rewards the Minari "
            f"dataset stores (task=...); domain {domain!r}'s tasks: {sorted(dom.tasks)}"
        )
    rewards = dataset.rewards(dom.task(task))  # n
    terminal = dataset.terminal if dataset.terminal is not None else np.zeros(len(dataset), bool)
    truncation = dataset.truncation  # n or None
    buffers = []
    for rows in _whole_episodes(dataset):
        cut = np.zeros(len(rows), bool) if truncation is None else truncation[rows]  # T
        if truncation is None:
            cut[-1] = True
        infos = None
        if dataset.physics is not None:
            infos = {"physics": np.r_[dataset.physics[rows], dataset.next_physics[rows[-1:]]] + 0}
        buffers.append(
            EpisodeBuffer(
                observations=np.r_[
                    dataset.observation[rows[:1]], dataset.next_observation[rows]
                ].astype(np.float32),  # T+1 x O
                actions=dataset.action[rows].astype(np.float32),  # T x A
                rewards=rewards[rows],  # T
                terminations=terminal[rows],  # T
                truncations=cut,  # T
                infos=infos,  # physics: T+1 x P
            )
        )
    box = action_box(dom)
    with warnings.catch_warnings():
        # minari warns of every optional field left out (author, code link, evaluation env...)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"minari\.")
        written = minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=Box(-np.inf, np.inf, (dom.obs_dim,), np.float32),
            action_space=Box(box.low, box.high, dtype=np.float32),
            algorithm_name=(dataset.meta.get("spec") or {}).get("collector") or name or None,
            description=description or f"zsrl dataset {name!r} of domain {domain!r}",
            data_format="hdf5",
        )
    written.storage.update_metadata(
        {METADATA_KEY: {"domain": domain, "reward_task": task, "dataset": name}}
    )
    return written.storage.data_path.parent


def _minari_source(cfg: RunConfig, root: Path | None, progress: bool) -> Dataset:
    """The ``minari`` data source: the Minari dataset ``cfg.data.path`` (an id in the local Minari
    root or a directory), for ``cfg.domain``; the run's first task names the stored rewards' task
    where the dataset does not."""
    if cfg.data.path is None:
        raise DatasetError(
            "data source 'minari' reads a Minari dataset: give its id in the local Minari root "
            "or its directory (--data-path mujoco/walker2d/medium-v0, or the setting data.path)"
        )
    return read_minari(cfg.data.path, cfg.domain, cfg.eval.tasks[0] if cfg.eval.tasks else None)


register_source("minari", _minari_source)
