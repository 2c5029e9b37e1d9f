"""Figures and tables of training runs, shared by the scripts, the results and the book (the maze's
own maps are in :mod:`zsrl.envs.point_mass_maze.maps`).

matplotlib is optional (the ``book`` extra): nothing here imports it at module load, and every
function draws on axes that the caller made, so a figure can mix panels from several helpers.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Table:
    """A table of results: an HTML table where a notebook shows it (``display(Table(...))``, or the
    last line of a cell), aligned plain text where it is printed; ``note`` goes under it."""

    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    note: str = ""

    def __post_init__(self) -> None:
        # kept as tuples: rows given as a generator are read once, here
        object.__setattr__(self, "header", tuple(self.header))
        object.__setattr__(self, "rows", tuple(tuple(row) for row in self.rows))
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(
                    f"a row has {len(row)} cells, the header {len(self.header)}: {list(row)}"
                )

    def _repr_html_(self) -> str:
        def cells(tag: str, row: Sequence[Any]) -> str:
            return "".join(f"<{tag}>{html.escape(str(cell))}</{tag}>" for cell in row)

        body = "".join(f"<tr>{cells('td', row)}</tr>" for row in self.rows)
        note = f"<p>{html.escape(self.note)}</p>" if self.note else ""
        return (
            f'<table class="table" style="font-size:0.9em"><thead><tr>{cells("th", self.header)}'
            f"</tr></thead><tbody>{body}</tbody></table>{note}"
        )

    def __str__(self) -> str:
        text = [[str(cell) for cell in row] for row in [self.header, *self.rows]]
        widths = [max(len(row[k]) for row in text) for k in range(len(self.header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in text
        ]
        return "\n".join(lines + ([self.note] if self.note else []))


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


def save_script_outputs(
    stem: Path,
    script: str,
    argv: list[str],
    runs: list[dict[str, Any]],
    *,
    fig: Any = None,
    arrays: dict[str, np.ndarray] | None = None,
    **fields: Any,
) -> None:
    """What a results script leaves, each file written atomically: STEM.png from ``fig`` (then
    closed), STEM.npz from ``arrays``, and STEM.json with the command that made them (``python SCRIPT
    ARGV``), any other ``fields``, then the runs' numbers. Suffixes are appended, not substituted:
    stems may hold dots (``…_g0.995``)."""
    import shlex

    from zsrl.io import atomic_write_json, atomic_writer

    stem = Path(stem)
    if fig is not None:
        import matplotlib.pyplot as plt

        save_figure(fig, stem.with_name(stem.name + ".png"))
        plt.close(fig)
    if arrays is not None:
        with atomic_writer(stem.with_name(stem.name + ".npz")) as f:
            np.savez_compressed(f, **arrays)
    command = f"python {script} " + shlex.join(argv)
    payload = {"command": command, **fields, "runs": runs}
    atomic_write_json(stem.with_name(stem.name + ".json"), payload)


def effective_rank(
    ortho_loss: float | np.ndarray, z_dim: int, coefficient: float = 1.0
) -> float | np.ndarray:
    """tr(Σ)²/tr(Σ²) of B's second moment Σ = E_ρ[B Bᵀ], read off the logged orthonormality loss.

    With ‖B‖² = d the loss is λ(tr(Σ²) − 2d) (book eq. (eq-ortho-loss)), so the participation ratio
    d²/tr(Σ²) follows from it: d when Σ = I, 1 when every B(s) points the same way.
    """
    return z_dim**2 / (ortho_loss / coefficient + 2 * z_dim)


def draw_divergence(
    axes: Any, runs: dict[str, Path], until: int | None = None
) -> list[dict[str, Any]]:
    """Four panels (a row of 4 axes), a line per run: the actor's Q (the paper's Figure 2 quantity),
    the mean target measure against its exact value 1/(1 − γ), B's effective rank, the mean return.

    ``runs`` maps labels to run directories or committed ``record_X.json`` files; ``until`` cuts
    every run at that update, to compare runs of different lengths on one budget. Returns each run's
    end points (the figure's numbers) with its command.
    """
    from zsrl.results import load_records, metrics_path

    summary, gammas = [], set()
    for label, path in runs.items():
        metrics = read_metrics(metrics_path(path))
        (record,) = load_records([path])
        if until is not None:
            keep = metrics["step"] <= until
            metrics = {key: values[keep] for key, values in metrics.items()}
            record = {
                **record,
                "evaluations": [e for e in record["evaluations"] if e["step"] <= until],
            }
        if not len(metrics["step"]) or not record["evaluations"]:
            raise ValueError(f"{path}: no logged metrics or evaluations up to update {until}")
        agent = record["config"]["agent"]
        gamma = agent["discount"]
        gammas.add(gamma)
        steps = metrics["step"]
        rank = effective_rank(metrics["ortho_loss"], agent["z_dim"], agent["ortho_coefficient"])
        eval_steps, returns = evaluation_curve(record)
        (line,) = axes[0].plot(steps, metrics["actor_q"], label=label)
        axes[1].plot(steps, metrics["target_M"], color=line.get_color())
        axes[2].plot(steps, rank, color=line.get_color())
        axes[3].plot(eval_steps, returns, marker="o", ms=3, color=line.get_color())
        above = np.flatnonzero(metrics["target_M"] > 1 / (1 - gamma))
        summary.append(
            {
                "label": label,
                "run": str(path),
                "command": record["command"],
                "scale": record["scale"],
                "discount": gamma,
                "last_step": int(steps[-1]),
                "target_M_last": float(metrics["target_M"][-1]),
                "first_step_above_exact_level": int(steps[above[0]]) if above.size else None,
                "b_rank_max": float(rank.max()),
                "b_rank_last": float(rank[-1]),
                "actor_q_last": float(metrics["actor_q"][-1]),
                "fb_off_diag_last": float(metrics["fb_off_diag"][-1]),
                "q_data_last": float(metrics["q_data"][-1]) if "q_data" in metrics else None,
                "best_mean_return": float(returns.max()),
            }
        )
    for gamma in sorted(gammas):
        axes[1].axhline(1 / (1 - gamma), color="0.5", ls="--", lw=1)
    for ax in axes[:2]:
        ax.set_yscale("symlog", linthresh=1.0)
    axes[0].set_title("actor Q (symlog)")
    axes[1].set_title("mean target measure (dashed: 1/(1−γ))")
    axes[2].set_title("effective rank of B")
    axes[3].set_title("mean return over tasks")
    axes[3].set_ylim(-20, 1000)
    for ax in axes:
        ax.set_xlabel("updates")
    axes[0].legend(frameon=False, fontsize=8)
    return summary
