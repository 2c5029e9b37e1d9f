"""Datasets: the on-disk format, data sources and collectors, episodes, subsampling, action filters
and reward relabelling."""

from zsrl.data.collect import (
    COLLECTORS,
    Collector,
    CollectorSpec,
    check_supports,
    collect,
    collector_names,
    data_dir,
    default_spec,
    get_collector,
    load_or_collect,
)
from zsrl.data.dataset import ACTION_FILTERS, Dataset, DatasetError
from zsrl.data.sources import (
    SOURCES,
    get_source,
    prepare_dataset,
    register_source,
    source_names,
)

__all__ = [
    "ACTION_FILTERS",
    "COLLECTORS",
    "SOURCES",
    "Collector",
    "CollectorSpec",
    "Dataset",
    "DatasetError",
    "check_supports",
    "collect",
    "collector_names",
    "data_dir",
    "default_spec",
    "get_collector",
    "get_source",
    "load_or_collect",
    "prepare_dataset",
    "register_source",
    "source_names",
]
