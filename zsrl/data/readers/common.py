"""What the file readers share: the path a run's configuration names, checked once; the check that
stored arrays are finite and their actions within the domain's action box; and the check that a
domain observes stored physics states as the stored observations."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

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
            f"data source {source!r} reads {what}: give its path "
            "(--data-path PATH, or the setting data.path=PATH)"
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


class ActionBox(NamedTuple):
    """The lowest and highest action that data of a domain may hold (A each, float32, as stored)."""

    domain: str
    low: np.ndarray
    high: np.ndarray


def action_box(domain: Domain) -> ActionBox:
    """``domain``'s :class:`ActionBox`: [-1, 1], where the agents and collectors act, widened
    where an actuator's control range is wider, and unbounded where an actuator has none. MuJoCo
    clamps each action to its actuator's range as it steps: quadruped's extend actuators act on
    [-0.8, 0.8] of the [-1, 1] that ExORL's agents and ours emit, and accept up to 1.1 where a
    policy of dm_control's action spec sends it. Builds the domain's model: compute it once per
    dataset, not per episode."""
    model = domain.model()
    limited = model.actuator_ctrllimited.astype(bool)  # A
    low = np.where(limited, np.minimum(model.actuator_ctrlrange[:, 0], -1.0), -np.inf)  # A
    high = np.where(limited, np.maximum(model.actuator_ctrlrange[:, 1], 1.0), np.inf)  # A
    return ActionBox(domain.name, low.astype(np.float32), high.astype(np.float32))


def check_arrays(
    label: str,
    arrays: dict[str, np.ndarray],
    actions: np.ndarray,
    box: ActionBox | None,
    action_row: int = 0,
) -> None:
    """A :class:`DatasetError` that names ``label`` (``"ExORL episode file F"``) where one of the
    ``arrays`` or the ``actions`` (rows x A) is not all finite, or, with a ``box``, where an
    action lies outside it; errors give the row, ``actions[0]`` being row ``action_row`` of the
    data."""
    for key, array in {**arrays, "actions": actions}.items():
        finite = np.isfinite(array)
        if not finite.all():
            row = int(np.argwhere(~finite)[0][0]) + (action_row if key == "actions" else 0)
            raise DatasetError(f"{label}'s {key} are not all finite (row {row})")
    if box is None:
        return
    low, high = box.low, box.high  # A each
    outside = (actions < low) | (actions > high)  # rows x A
    if outside.any():
        row, column = np.argwhere(outside)[0]
        raise DatasetError(
            f"{label}'s action {action_row + int(row)} is {actions[row].tolist()}, outside domain "
            f"{box.domain!r}'s range [{low[column]}, {high[column]}] in dimension {column}"
        )
