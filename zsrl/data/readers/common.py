"""What the file readers share: the path a run's configuration names, checked once, and the check
that a domain observes stored physics states as the stored observations."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from zsrl.config import RunConfig
from zsrl.data.dataset import DatasetError
from zsrl.envs import Domain

OBSERVE_TOLERANCE = 1e-5  # largest |observe(physics) - observation| that counts as reproduced
OBSERVE_CHECK_ROWS = 2_000  # states checked through observe (spread over the whole dataset)


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


def observe_check(domain: Domain, physics: np.ndarray, observation: np.ndarray, label: str) -> dict:
    """Whether ``domain.observe`` maps the physics states (n x P) to the stored observations
    (n x O), checked on up to ``OBSERVE_CHECK_ROWS`` rows spread evenly over the data; where it
    does not, a warning that names the data (``label``) and the domain. Call it from a reader's
    entry point: the warning points at the reader's caller."""
    rows = np.unique(np.linspace(0, len(physics) - 1, min(len(physics), OBSERVE_CHECK_ROWS)))
    rows = rows.astype(np.int64)  # m
    observed = np.asarray(domain.observe(physics[rows]), dtype=np.float64)  # m x O
    error = float(np.max(np.abs(observed - observation[rows]))) if len(rows) else 0.0
    matches = error <= OBSERVE_TOLERANCE  # False for a NaN error too
    if not matches:
        warnings.warn(
            f"{label}: domain {domain.name!r}'s observe(physics) differs from the stored "
            f"observations by up to {error:.3g}; evaluation observes through the domain, so the "
            "policy may see other inputs than it was trained on",
            stacklevel=3,
        )
    return {"matches": matches, "max_abs_error": error, "rows": len(rows)}
