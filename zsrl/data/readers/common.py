"""What the file readers share: the path a run's configuration names, checked once."""

from __future__ import annotations

from pathlib import Path

from zsrl.config import RunConfig
from zsrl.data.dataset import DatasetError


def data_path(cfg: RunConfig, what: str) -> Path:
    """``cfg.data.path`` as a path that exists; ``what`` says what the source reads (in errors)."""
    source = cfg.data.source
    if cfg.data.path is None:
        raise DatasetError(
            f"data source {source!r} reads {what}: set data.path "
            "(e.g. --set data.path=/path/to/data)"
        )
    path = Path(cfg.data.path).expanduser()
    if not path.exists():
        raise DatasetError(f"data source {source!r}: data.path {str(path)!r} does not exist")
    return path
