"""How much of the point-mass maze a dataset covers (paper Figure 8's heat maps;
reference: ref-exorl).

The maze is cut into ``bins x bins`` square cells over the arena; a cell is free space when its centre
is off the interior walls (for the mass's centre). A dataset's coverage is the histogram of the (x, y)
positions of its states, and its visited fraction the share of free cells holding at least one state.
A task's reward coverage is the share of transitions that earn at least a tenth of its top reward:
single-task offline RL (CQL) can learn a task only from transitions that earn its reward.
Everything here is numpy; :func:`plot_coverage` imports matplotlib (the ``book`` extra) only when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from zsrl.data.dataset import Dataset
from zsrl.envs.point_mass_maze import ARENA_LIMIT, in_free_space
from zsrl.envs.registry import Task

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


def rewarded_fraction(dataset: Dataset, task: Task, threshold: float = 0.1) -> float:
    """The share of transitions whose reward r(s_{t+1}, a_t) for ``task`` is at least ``threshold``.

    On the maze a reach reward of 0.1 or more means the next state is within twice the target's
    radius of the goal (the Gaussian tolerance is 0.1 a radius beyond the target).
    """
    return float((dataset.rewards(task) >= threshold).mean())


def plot_coverage(datasets: Mapping[str, Dataset], path: Path, bins: int = 40) -> None:
    """Side-by-side heat maps (log counts) of each named dataset, written to ``path`` (png, pdf...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(datasets), figsize=(3.2 * len(datasets), 3.4), squeeze=False, layout="constrained"
    )
    from zsrl.plots import draw_maze, save_figure

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
