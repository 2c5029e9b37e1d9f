"""Summaries of several runs (seeds) of one configuration, from their result records.

Scores form a runs x tasks array (one IQM-over-episodes return per run and task); the summary gives
rliable's aggregates over all of them (IQM, mean, median and the optimality gap below the maximum
return), each with a stratified bootstrap 95 % interval, for the last and for the best evaluation of
each run, and for goal-reaching tasks the final distance to each goal and the success rate (the share
of episodes that end within the goal's radius), each with a 95 % interval over runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zsrl.envs import get_domain
from zsrl.io import atomic_write_json
from zsrl.record import read_record
from zsrl.stats import METRICS, aggregate_with_ci

# The smallest IQM a normalisation reference may have: one step's top reward in a whole episode.
MIN_REFERENCE_IQM = 1.0


def load_records(paths: list[Path]) -> list[dict[str, Any]]:
    records = []
    for path in paths:
        path = Path(path)
        path = path / "record.json" if path.is_dir() else path
        if not path.exists():
            raise FileNotFoundError(f"no result record at {path}")
        records.append(read_record(path))
    return records


def metrics_path(path: Path | str) -> Path:
    """The metrics file of a run: ``RUN_DIR/metrics.csv``, or ``metrics_X.csv`` beside a committed
    ``record_X.json`` (the layout of ``results/``)."""
    path = Path(path)
    if path.is_dir():
        return path / "metrics.csv"
    if not (path.name.startswith("record_") and path.suffix == ".json"):
        raise ValueError(f"{path} is neither a run directory nor a record_*.json file")
    return path.with_name("metrics_" + path.name.removeprefix("record_")).with_suffix(".csv")


# the evaluations of a run that results report: its best and its last (reference: ref-evaluation)
EVALUATIONS = ("best", "last")


def pick_evaluation(record: dict[str, Any], which: str) -> dict[str, Any]:
    """The record's last evaluation, or its best (highest mean score over tasks)."""
    if which not in EVALUATIONS:
        raise ValueError(f"unknown evaluation {which!r}; valid choices: {list(EVALUATIONS)}")
    evaluations = record["evaluations"]
    if which == "last":
        return evaluations[-1]
    return max(evaluations, key=lambda e: e["mean_score"])


def combine_single_task(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Single-task runs (CQL, TD3) as one record per seed over all the tasks they were trained for.

    A single-task run is evaluated on its own task only, so a seed's score on task t is the score of
    that seed's run trained for t: its best evaluation for "best", its last for "last". Each combined
    record holds two evaluations, the per-task best first and the per-task last second, which is what
    :func:`summarize` picks (the best's mean score is never below the last's). Every seed must have
    exactly one run per task, all of one method and dataset.
    """
    by_seed: dict[int, dict[str, dict[str, Any]]] = {}
    for r in records:
        task = r.get("single_task")
        if task is None:
            raise ValueError(f"a {r['method']} record is not a single-task run: {r['command']}")
        runs = by_seed.setdefault(r["config"]["train"]["seed"], {})
        if task in runs:
            raise ValueError(f"two runs of seed {r['config']['train']['seed']} for task {task!r}")
        runs[task] = r
    kinds = {(r["method"], r["dataset"]["name"], r["scale"]) for r in records}
    if len(kinds) != 1:
        raise ValueError(f"single-task runs of different (method, dataset, scale): {sorted(kinds)}")
    tasks = scored_tasks(records)
    missing = {seed: sorted(set(tasks) - set(runs)) for seed, runs in by_seed.items()}
    missing = {seed: gap for seed, gap in missing.items() if gap}
    if missing:
        raise ValueError(f"single-task runs missing for some seeds' tasks: {missing}")

    def entry(runs: dict[str, dict[str, Any]], which: str) -> dict[str, Any]:
        picked = {t: pick_evaluation(runs[t], which) for t in tasks}
        scores = {t: picked[t]["scores"][t] for t in tasks}
        return {
            "step": max(e["step"] for e in picked.values()),
            "mean_score": float(np.mean(list(scores.values()))),
            "scores": scores,
            "tasks": {t: picked[t]["tasks"][t] for t in tasks},
        }

    combined = []
    for _, runs in sorted(by_seed.items()):
        ordered = [runs[t] for t in tasks]
        combined.append(
            {
                **ordered[0],
                "tasks": tasks,
                "single_task": None,
                "combined_from_tasks": tasks,
                "steps_done": min(r["steps_done"] for r in ordered),
                "wall_time_s": sum(r["wall_time_s"] for r in ordered),
                "command": " ; ".join(r["command"] for r in ordered),
                "evaluations": [entry(runs, "best"), entry(runs, "last")],
            }
        )
    return combined


def scored_tasks(records: list[dict[str, Any]]) -> list[str]:
    """The tasks a method's runs are scored on: the first run's, or, for single-task runs, every
    task some seed was trained for, sorted (the order of :func:`combine_single_task`'s records)."""
    if any(r.get("single_task") for r in records):
        return sorted({r["single_task"] for r in records})
    return list(records[0]["tasks"])


def _per_run_with_ci(values: list[float], reps: int, seed: int) -> dict[str, Any]:
    """The mean over runs of one number per run, with its 95 % bootstrap interval over runs."""
    point, low, high = aggregate_with_ci(np.array(values)[:, None], ("mean",), reps, seed=seed)[
        "mean"
    ]
    return {"mean": point, "ci95": [low, high], "per_run": values}


def goal_statistics(
    entries: list[dict[str, Any]], task: str, radius: float | None, reps: int, seed: int
) -> dict[str, Any] | None:
    """Final distance and success rate of ``task`` over runs, or None for a task without a goal.

    Each run contributes its mean over episodes: the final distance to the goal, and the share of
    episodes ending within ``radius`` of it.
    """
    finals = [entry["tasks"][task]["final_distance"] for entry in entries]
    if any(not f for f in finals):
        return None
    success = (  # None for a task whose success distance is unknown (not a registered task)
        None
        if radius is None
        else _per_run_with_ci([float(np.mean(np.asarray(f) <= radius)) for f in finals], reps, seed)
    )
    return {
        "final_distance": _per_run_with_ci([float(np.mean(f)) for f in finals], reps, seed),
        "success_rate": success,
        "radius": radius,
    }


def _radius(domain: str, task: str, given: float | None) -> float | None:
    """``given``, else the registered task's success distance (None if it has none)."""
    if given is not None:
        return given
    tasks = get_domain(domain).tasks
    return tasks[task].success_distance if task in tasks else None


def summarize(
    records: list[dict[str, Any]],
    reps: int = 10_000,
    seed: int = 0,
    threshold: float | None = None,
    tasks: list[str] | None = None,
    success_radius: float | None = None,
) -> dict[str, Any]:
    """Aggregates with 95 % stratified-bootstrap intervals over runs x tasks, last and best.

    ``iqm`` and ``ci95`` give the IQM and its interval; ``aggregates`` gives every metric of
    ``zsrl.stats.METRICS`` as ``{"point": p, "ci95": [low, high]}``, the optimality gap measured
    below ``threshold`` (in return units; default: the domain's best return). Single-task runs
    are first combined per seed over their tasks (:func:`combine_single_task`). ``tasks`` orders
    the task columns (default: the runs' own order); it must name exactly the tasks the runs are
    scored on. ``goals`` gives, per goal task,
    the final distance and the success rate within ``success_radius`` (default: the task's own
    success distance, the maze reward's radius) with intervals over runs (:func:`goal_statistics`).
    """
    domains = sorted({r["domain"] for r in records})
    if len(domains) > 1:
        raise ValueError(f"runs of several domains {domains} cannot be summarised together")
    domain = domains[0]
    if threshold is None:
        threshold = get_domain(domain).max_return
    if any(r.get("single_task") for r in records):
        records = combine_single_task(records)
    task_sets = sorted({tuple(sorted(r["tasks"])) for r in records})
    if len(task_sets) > 1:
        raise ValueError(
            f"runs scored on different tasks {[list(t) for t in task_sets]} cannot be summarised "
            "together"
        )
    if tasks is None:
        tasks = records[0]["tasks"]
    elif sorted(tasks) != sorted(records[0]["tasks"]):
        raise ValueError(f"tasks {list(tasks)} are not the runs' tasks {records[0]['tasks']}")
    out: dict[str, Any] = {
        "runs": len(records),
        "tasks": tasks,
        "seeds": [r["config"]["train"]["seed"] for r in records],
        "steps": [r["steps_done"] for r in records],
        "wall_time_s": [r["wall_time_s"] for r in records],
        "scale": records[0]["scale"],
        "method": records[0]["method"],
        "domain": records[0]["domain"],
        "dataset": records[0]["dataset"]["name"],
        "commands": [r["command"] for r in records],
    }
    for which in ("last", "best"):
        entries = [pick_evaluation(r, which) for r in records]
        scores = np.array([[e["scores"][t] for t in tasks] for e in entries])  # runs x tasks
        aggregates = aggregate_with_ci(scores, METRICS, reps=reps, seed=seed, threshold=threshold)
        point, low, high = aggregates["iqm"]
        distances = {}
        for t in tasks:
            finals = [d for e in entries for d in (e["tasks"][t]["final_distance"] or [])]
            distances[t] = float(np.mean(finals)) if finals else None
        out[which] = {
            "iqm": point,
            "ci95": [low, high],
            "aggregates": {
                m: {"point": p, "ci95": [lo, hi]} for m, (p, lo, hi) in aggregates.items()
            },
            "optimality_gap_threshold": threshold,
            "steps": [e["step"] for e in entries],
            "scores": scores.tolist(),
            "mean_per_task": dict(zip(tasks, scores.mean(0).tolist(), strict=True)),
            "mean_final_distance": distances,
            "goals": {
                t: goal_statistics(entries, t, _radius(domain, t, success_radius), reps, seed)
                for t in tasks
            },
        }
    return out


def write_summary(paths: list[Path], out: Path) -> dict[str, Any]:
    if Path(out).is_dir():
        raise ValueError(f"--out {out} is a folder; give the summary's file (a .json path)")
    summary = summarize(load_records(paths))
    atomic_write_json(out, summary)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['method']} on {summary['domain']} / {summary['dataset']} ({summary['scale']} scale),"
        f" {summary['runs']} runs, steps {summary['steps']}",
    ]
    for which in ("last", "best"):
        s = summary[which]
        lines.append(
            f"{which:5s} {'IQM':14s} {s['iqm']:7.1f}  95% CI [{s['ci95'][0]:.1f}, {s['ci95'][1]:.1f}]"
        )
        # summaries written before the other aggregates existed have only the IQM
        for metric, a in s.get("aggregates", {}).items():
            if metric != "iqm":
                label = metric.replace("_", " ")
                low, high = a["ci95"]
                lines.append(f"      {label:14s} {a['point']:7.1f}  95% CI [{low:.1f}, {high:.1f}]")
        for task in summary["tasks"]:
            dist = s["mean_final_distance"][task]
            dist_text = "" if dist is None else f"  mean final distance {dist:.3f}"
            goal = s.get("goals", {}).get(task)  # summaries written before goals existed lack it
            if goal is not None and goal["success_rate"] is not None:
                rate = goal["success_rate"]
                dist_text += (
                    f"  success {rate['mean']:.2f} [{rate['ci95'][0]:.2f}, {rate['ci95'][1]:.2f}]"
                )
            lines.append(f"      {task:24s} mean return {s['mean_per_task'][task]:7.1f}{dist_text}")
    return "\n".join(lines)


def compare_methods(
    groups: dict[str, list[dict[str, Any]]],
    reference: str | None = None,
    which: str = "best",
    reps: int = 10_000,
    seed: int = 0,
    normalize_to: str | None = None,
) -> dict[str, Any]:
    """Several methods' summaries side by side, each against ``reference``, with profiles' scores.

    ``groups`` maps a label to the records of that method's runs (seeds), all scoring the same tasks
    (in any order: every summary lists them in the reference's order).
    Each label gets its :func:`summarize` entry, and, for every label but the reference, the
    probability that it improves on the reference (runs x tasks of ``which`` evaluation) with a
    stratified bootstrap 95 % interval. The first label is the reference by default.

    ``normalize_to`` (a label, e.g. CQL's) adds every method's IQM as a percentage of that method's
    IQM, the paper's normalisation (100 × IQM(method) / IQM(CQL), pooled over runs and tasks;
    reference: ref-aggregation); the interval scales the method's own interval by the same constant,
    treating the reference's IQM as the fixed 100 % line the paper draws.
    """
    from zsrl.stats import probability_of_improvement_ci

    if not groups:
        raise ValueError("no methods to compare")
    if which not in EVALUATIONS:
        raise ValueError(f"unknown evaluation {which!r}; valid choices: {list(EVALUATIONS)}")
    reference = reference or next(iter(groups))
    if reference not in groups:
        raise ValueError(f"unknown reference {reference!r}; valid: {list(groups)}")
    tasks = {label: scored_tasks(records) for label, records in groups.items()}
    if len({tuple(sorted(t)) for t in tasks.values()}) != 1:
        raise ValueError(f"methods score different tasks: {tasks}")
    order = tasks[reference]  # every method's columns in the reference's task order
    summaries = {
        label: summarize(records, reps, seed, tasks=order) for label, records in groups.items()
    }
    ref_scores = summaries[reference][which]["scores"]
    improvement = {}
    for label, s in summaries.items():
        if label != reference:
            point, low, high = probability_of_improvement_ci(
                np.array(s[which]["scores"]), np.array(ref_scores), reps=reps, seed=seed
            )
            improvement[label] = {"point": point, "ci95": [low, high]}
    out = {
        "which": which,
        "reference": reference,
        "methods": summaries,
        "probability_of_improvement": improvement,
    }
    if normalize_to is not None:
        out["normalised"] = normalized_iqm(summaries, normalize_to, which)
    return out


def normalized_iqm(
    summaries: dict[str, Any], to: str, which: str = "best", min_base: float = MIN_REFERENCE_IQM
) -> dict[str, Any]:
    """Each method's IQM (and its interval) as a percentage of method ``to``'s IQM (reference:
    ref-aggregation).

    A reference IQM under ``min_base`` leaves nothing to normalise by (the maze's reward is never
    exactly 0, so a policy that never nears the goal still earns some 1e-70): the result then says
    so instead.
    """
    if to not in summaries:
        raise ValueError(f"unknown normalisation reference {to!r}; valid: {list(summaries)}")
    base = summaries[to][which]["iqm"]
    if base < min_base:
        return {
            "to": to,
            "base_iqm": base,
            "error": f"the IQM of {to} is {base:.3g}, under {min_base:g} (one step's top reward):"
            " no 100 % line",
        }
    percent = lambda x: 100.0 * x / base  # noqa: E731
    return {
        "to": to,
        "base_iqm": base,
        "methods": {
            label: {
                "point": percent(s[which]["iqm"]),
                "ci95": [percent(x) for x in s[which]["ci95"]],
            }
            for label, s in summaries.items()
        },
    }
