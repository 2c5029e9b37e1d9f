"""One markdown row per run: its best evaluation, last mean return, actor Q, budget and wall time.

    python scripts/run_table.py results/aggregate_rnd_book/record_*.json --q-at 15000 30000
    python scripts/run_table.py results/fb_stability_pilots/record_*.json --departures \
        --at 15000 30000 --metrics actor_q fb_off_diag q_data q_uniform

Each argument is a run directory or a committed ``record_X.json`` (its ``metrics_X.csv`` beside it).
The best evaluation is the one with the highest mean return over the run's tasks; the tasks it scored
on (return ≥ 0.5) are listed. "actor Q" is the logged predicted value of the actor's action (FB
family, SF-LAP; "-" for methods that log none). Rows are sorted by method (as ``zsrl.methods.method_names()``
orders them), task and seed. ``--departures`` adds a column with the agent settings in which each
run departs from its preset (its ``--set`` values), and ``--at``/``--metrics`` report any logged
metric at given steps. The results READMEs' tables are made with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from zsrl.config import RunConfig, departures
from zsrl.methods import get_method, method_names
from zsrl.plots import read_metrics
from zsrl.results import load_records, metrics_path, pick_evaluation


def scored_tasks(scores: dict[str, float]) -> str:
    """'top_left 928, top_right 79': the tasks with a return of at least 0.5, or 'all 0'."""
    shown = [f"{task.removeprefix('reach_')} {v:.0f}" for task, v in scores.items() if v >= 0.5]
    return ", ".join(shown) or "all 0"


def metric_at(path: Path, steps: list[int], name: str = "actor_q") -> list[str]:
    """The logged metric ``name`` at each of ``steps`` (the last row at or before it), or '-'."""
    metrics_file = metrics_path(path)
    metrics = read_metrics(metrics_file) if metrics_file.exists() else {}
    if name not in metrics:
        return ["-"] * len(steps)
    out = []
    for step in steps:
        logged = metrics[name][metrics["step"] <= step]
        out.append(f"{round(float(logged[-1])):,}" if len(logged) else "-")  # never "-0"
    return out


def actor_q_at(path: Path, steps: list[int]) -> list[str]:
    """The logged actor Q at each of ``steps``: :func:`metric_at` for ``actor_q``."""
    return metric_at(path, steps, "actor_q")


def departure_text(record: dict[str, Any]) -> str:
    """'target_heads mean, lr_b_coefficient 0.1': the agent settings that differ from the preset."""
    changed = departures(RunConfig.from_dict(record["config"]))
    return ", ".join(f"{k.removeprefix('agent.')} {v}" for k, v in changed.items()) or "preset"


def run_row(path: Path, record: dict[str, Any], q_steps: list[int]) -> list[str]:
    best, last = (pick_evaluation(record, which) for which in ("best", "last"))
    task = record.get("single_task")
    label = get_method(record["method"]).label + (
        f" ({task.removeprefix('reach_')})" if task else ""
    )
    return [
        label,
        str(record["config"]["train"]["seed"]),
        f"{best['mean_score']:.1f} ({best['step'] / 1000:g}k: {scored_tasks(best['scores'])})",
        f"{last['mean_score']:.1f}",
        *actor_q_at(path, q_steps),
        f"{record['steps_done'] / 1000:g}k",
        f"{record['wall_time_s'] / 60:.0f} min",
    ]


def table(
    paths: list[Path],
    q_steps: list[int],
    show_departures: bool = False,
    at: list[int] | None = None,
    metrics: list[str] | None = None,
) -> str:
    records = load_records(paths)
    order = sorted(
        range(len(paths)),
        key=lambda i: (
            method_names().index(records[i]["method"]),
            records[i].get("single_task") or "",
            records[i]["config"]["train"]["seed"],
        ),
    )
    q_heads = [f"actor Q at {s / 1000:g}k" for s in q_steps]
    extra = [(name, step) for name in metrics or [] for step in at or []]
    head = ["method", "seed", "best mean return (step: tasks)", "last", *q_heads, "updates", "wall"]
    head = (["settings"] if show_departures else []) + head
    head += [f"{name} at {step / 1000:g}k" for name, step in extra]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for i in order:
        row = run_row(Path(paths[i]), records[i], q_steps)
        row = ([departure_text(records[i])] if show_departures else []) + row
        row += [metric_at(Path(paths[i]), [step], name)[0] for name, step in extra]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or record_*.json")
    parser.add_argument(
        "--q-at", nargs="*", type=int, default=[], metavar="STEP", help="steps to report actor Q at"
    )
    parser.add_argument(
        "--departures",
        action="store_true",
        help="a column of each run's departures from its preset",
    )
    parser.add_argument("--at", nargs="*", type=int, default=[], metavar="STEP")
    parser.add_argument(
        "--metrics",
        nargs="*",
        default=[],
        metavar="NAME",
        help="logged metrics to report --at steps",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    print(table(args.runs, args.q_at, args.departures, args.at, args.metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
