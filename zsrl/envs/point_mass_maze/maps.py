"""Maps of the point-mass maze: its walls, rollouts drawn on it, and how much of it a dataset covers
(paper Figure 8's heat maps; reference: ref-exorl).

The maze is cut into ``bins x bins`` square cells over the arena; a cell is free space when its centre
is off the interior walls (for the mass's centre). A dataset's coverage is the histogram of the (x, y)
positions of its states, and its visited fraction the share of free cells holding at least one state.
Everything here is numpy; the drawing functions draw on axes the caller made, and
:func:`plot_coverage` imports matplotlib (the ``book`` extra) only when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from zsrl.data.dataset import Dataset
from zsrl.envs.point_mass_maze import ARENA_LIMIT, GOALS, START_HIGH, START_LOW, in_free_space

EXTENT = ARENA_LIMIT + 0.01  # the arena's inner boundary: joint range plus the mass's radius


def _edges(bins: int) -> np.ndarray:
    return np.linspace(-EXTENT, EXTENT, bins + 1)  # bins + 1


def coverage_histogram(dataset: Dataset, bins: int = 20) -> np.ndarray:
    """Visits of each cell: counts[i, j] of states with x in x-bin i and y in y-bin j: (bins, bins).

    States are the transitions' start states (``physics[:, :2]`` is the mass's position).
    """
    xy = dataset.physics[:, :2]  # n x 2
    edges = _edges(bins)
    counts, _, _ = np.histogram2d(xy[:, 0], xy[:, 1], bins=(edges, edges))  # bins x bins
    return counts.astype(np.int64)


def free_cells(bins: int = 20) -> np.ndarray:
    """Whether each cell's centre is free space (not inside a wall): (bins, bins), indexed [x, y]."""
    edges = _edges(bins)
    centres = (edges[:-1] + edges[1:]) / 2  # bins
    x, y = np.meshgrid(centres, centres, indexing="ij")  # bins x bins each
    return in_free_space(np.stack([x, y], axis=-1))  # bins x bins


def visited_fraction(dataset: Dataset, bins: int = 20) -> float:
    """The share of free cells that hold at least one state of ``dataset``."""
    free = free_cells(bins)
    return float((coverage_histogram(dataset, bins)[free] > 0).mean())


ROOMS = ("top_left", "top_right", "bottom_left", "bottom_right")  # the start room first


def room_shares(dataset: Dataset) -> dict[str, float]:
    """The share of ``dataset``'s states in each of the four rooms (the quadrants of the maze)."""
    x, y = dataset.physics[:, 0], dataset.physics[:, 1]  # n each
    masks = {
        "top_left": (x < 0) & (y >= 0),
        "top_right": (x >= 0) & (y >= 0),
        "bottom_left": (x < 0) & (y < 0),
        "bottom_right": (x >= 0) & (y < 0),
    }
    return {room: float(masks[room].mean()) for room in ROOMS}


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


def plot_coverage(datasets: Mapping[str, Dataset], path: Path, bins: int = 40) -> None:
    """Side-by-side heat maps (log counts) of each named dataset, written to ``path`` (png, pdf...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(datasets), figsize=(3.2 * len(datasets), 3.4), squeeze=False, layout="constrained"
    )
    from zsrl.plots import save_figure

    extent = (-EXTENT, EXTENT, -EXTENT, EXTENT)
    for ax, (name, dataset) in zip(axes[0], datasets.items(), strict=True):
        counts = coverage_histogram(dataset, bins).T.astype(float)  # y x x, for imshow
        image = ax.imshow(
            np.log10(np.where(counts > 0, counts, np.nan)),
            origin="lower",
            extent=extent,
            cmap="viridis",
            vmin=0,
        )
        draw_maze(ax, bins, start_room=False)
        ax.set_title(f"{name}\n{visited_fraction(dataset, bins):.0%} of free cells", fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="log10 visits")
    save_figure(fig, Path(path), dpi=80)
    plt.close(fig)
