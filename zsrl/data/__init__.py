"""Datasets: the on-disk format, collectors, subsampling, action filters and reward relabelling."""

from zsrl.data.collect import (
    COLLECTORS,
    Collector,
    CollectorSpec,
    collect,
    collector_names,
    data_dir,
    default_spec,
    get_collector,
    load_or_collect,
)
from zsrl.data.dataset import ACTION_FILTERS, Dataset, DatasetError

__all__ = [
    "ACTION_FILTERS",
    "COLLECTORS",
    "Collector",
    "CollectorSpec",
    "Dataset",
    "DatasetError",
    "collect",
    "collector_names",
    "data_dir",
    "default_spec",
    "get_collector",
    "load_or_collect",
]
