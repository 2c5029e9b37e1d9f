"""Figures of the maze and of training runs, shared by the scripts, the results and the book.

matplotlib is optional (the ``book`` extra): nothing here imports it at module load, and every
function draws on axes that the caller made, so a figure can mix panels from several helpers.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from zsrl.data.coverage import EXTENT, free_cells
from zsrl.envs.point_mass_maze import GOALS, START_HIGH, START_LOW


def maze_walls(bins: int = 120) -> np.ndarray:
    """1 where a cell's centre is inside a wall, NaN elsewhere, as an image: (bins, bins) indexed [y, x]."""
    return np.where(free_cells(bins).T, np.nan, 1.0)  # bins x bins


def draw_maze(ax: Any, bins: int = 120, start_room: bool = True) -> None:
    """The maze's walls in grey, the start room's box dashed, on axes in maze coordinates."""
    extent = (-EXTENT, EXTENT, -EXTENT, EXTENT)
    ax.imshow(maze_walls(bins), origin="lower", extent=extent, cmap="Greys", vmin=0, vmax=1.6)
    if start_room:
        (x0, y0), (x1, y1) = START_LOW, START_HIGH
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], "k--", lw=0.6, alpha=0.5)
    ax.set_xlim(-EXTENT, EXTENT)
    ax.set_ylim(-EXTENT, EXTENT)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def draw_rollouts(
    ax: Any,
    paths: np.ndarray,
    goal: str | None = None,
    color: str = "C0",
    alpha: float = 0.7,
) -> None:
    """Episodes' (x, y) paths (episodes x steps x ≥2) over the maze, starts as dots, the goal a star."""
    draw_maze(ax)
    for path in paths:
        ax.plot(path[:, 0], path[:, 1], color=color, lw=1.0, alpha=alpha)
        ax.plot(path[0, 0], path[0, 1], "o", color=color, ms=2.5)
    if goal is not None:
        gx, gy = GOALS[goal]
        ax.plot(gx, gy, "*", color="gold", mec="k", mew=0.6, ms=13, zorder=5)


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """A run's ``metrics.csv`` as columns: {name: values}, one value per logged step."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} holds no metrics rows")
    return {key: np.array([float(r[key]) for r in rows]) for key in rows[0]}


def evaluation_curve(record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean score over tasks) of every evaluation in a result record."""
    evaluations = record["evaluations"]
    steps = np.array([e["step"] for e in evaluations])
    return steps, np.array([e["mean_score"] for e in evaluations])


def save_figure(fig: Any, path: Path, dpi: int = 90) -> None:
    """Write a matplotlib figure atomically (to a temporary file, then renamed), as PNG by suffix."""
    from zsrl.io import atomic_writer

    with atomic_writer(Path(path)) as f:
        fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi)
