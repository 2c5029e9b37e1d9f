"""Where a run's data come from: one registry of loaders, each returning a :class:`Dataset`.

``collect`` (the default) loads a named dataset of our collectors from the cache, collecting it when
missing. Readers of other formats register here under their own names (:mod:`zsrl.data.readers`:
``exorl`` directories, ``d4rl`` HDF5 files, ``minari`` datasets) and read ``cfg.data.path``; the
trainer receives the prepared dataset and never asks where it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from zsrl.config import RunConfig
from zsrl.data.collect import CollectorSpec, default_spec, get_collector, load_or_collect
from zsrl.data.dataset import Dataset

# (run config, cache root or None, show progress) -> the whole dataset, before subsampling
Loader = Callable[[RunConfig, Path | None, bool], Dataset]


def collected_spec(cfg: RunConfig) -> CollectorSpec:
    """The spec of the dataset a run of our collectors' data (``cfg.data.name``) trains on: a
    collector with scales follows the run's scale (``quick`` runs on ``quick`` data)."""
    scales = get_collector(cfg.data.name).scales
    scale = cfg.scale if cfg.scale in scales else None
    return default_spec(cfg.domain, cfg.data.name, cfg.data.episodes, cfg.data.collect_seed, scale)


def _collected(cfg: RunConfig, root: Path | None, progress: bool) -> Dataset:
    """A named dataset of our collectors (``cfg.data.name``), from the cache or collected now."""
    return load_or_collect(collected_spec(cfg), root=root, progress=progress)


SOURCES: dict[str, Loader] = {"collect": _collected}


def register_source(name: str, loader: Loader, replace: bool = False) -> None:
    """Add a data source; a name already taken is an error unless ``replace``."""
    if name in SOURCES and not replace:
        raise ValueError(f"data source {name!r} is already registered")
    SOURCES[name] = loader


def source_names() -> list[str]:
    return sorted(SOURCES)


def get_source(name: str) -> Loader:
    if name not in SOURCES:
        raise ValueError(f"unknown data source {name!r}; valid choices: {source_names()}")
    return SOURCES[name]


def prepare_dataset(
    cfg: RunConfig, data_root: Path | None = None, progress: bool = True
) -> Dataset:
    """A run's training data: its source's dataset, subsampled, then filtered (reference:
    ref-datasets)."""
    dataset = get_source(cfg.data.source)(cfg, data_root, progress)
    if cfg.data.n_transitions is not None:
        dataset = dataset.subsample(cfg.data.n_transitions, cfg.data.subsample_seed)
    if cfg.data.action_filter is not None:
        dataset = dataset.filter_actions(cfg.data.action_filter)
    if len(dataset) < 2:
        raise ValueError(f"the training dataset has {len(dataset)} transitions; need at least 2")
    return dataset


# The file readers register their sources (exorl, d4rl, minari) on import; imported last, since
# they need register_source above.
from zsrl.data import readers  # noqa: E402, F401
