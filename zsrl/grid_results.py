"""A grid of runs read back from its results folder, and the maze experiments' tables and verdicts.

A grid file (:mod:`zsrl.sweep`) plans the cells; a sweep with ``--results FOLDER`` copies each
finished cell's record and metrics there, one by one, as ``record_<cell>.json`` and
``metrics_<cell>.csv`` (``<cell>`` is :attr:`zsrl.sweep.Cell.run_name`). :func:`load_grid_results`
pairs every cell with its record where one has landed; :meth:`GridResults.select` and
:func:`group_runs` pick and group the runs by their axes (method, dataset, size, action filter,
seed, task, domain). Each ``*_table`` function computes one experiment of the book's chapter
``book/experiments.md`` from whatever records exist and says how many of the runs that the grid
plans for it are in (:class:`Progress`), so the chapter fills itself in as the grid runs.

Verdicts on the paper's claims follow one rule, stated here and in the chapter. A claim is checked
by comparisons, each a 95 % stratified-bootstrap interval: of a probability of improvement
P(A > B) (null value ½) or of a difference (null value 0). A comparison "A beats B" is *reproduced*
when its interval lies above the null value, *the opposite* when it lies below, *no clear
difference* when it contains it; a comparison "A is no worse than B" is reproduced unless its
interval lies below the null value (:func:`outcome`). A claim is reproduced when all its
comparisons are, not reproduced (the opposite) when any comparison shows the opposite, partly
reproduced when some are reproduced and none shows the opposite, and not reproduced (no clear
difference) otherwise (:func:`combine_outcomes`). A claim gets no verdict until every run the grid
plans for it has landed: until then it is "pending (k of n runs)", and where every run has ended
but some stopped early (a non-finite loss), it stays "undecided" with their count.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from zsrl.config import config_differences
from zsrl.methods import get_method
from zsrl.plots import read_metrics
from zsrl.record import read_record
from zsrl.results import EVALUATIONS, compare_methods, pick_evaluation, summarize
from zsrl.stats import (
    aggregate_replicates,
    aggregate_with_ci,
    iqm,
    performance_profile_ci,
    probability_of_improvement_ci,
)
from zsrl.sweep import Cell, Grid, load_grid

# The axes a run is selected and grouped by: the cell's, with the dataset's size in transitions.
AXES = ("method", "dataset", "size", "action_filter", "seed", "task", "domain")
DATA_AXES = ("domain", "dataset", "size", "action_filter")  # what a run trains on
WHERE_IT_RAN = ("train.device", "train.threads")  # a record's config fields that may differ
FB_FAMILY = ("fb", "vcfb", "mcfb")
CONSERVATIVE = ("vcfb", "mcfb")
DIDACTIC_TASKS = ("reach_top_left", "reach_top_right")  # reference: ref-didactic
LOW_QUALITY = ("rnd", "random")  # the aggregate's datasets, 100k transitions each
HIGH_QUALITY = "uniform-reset"
OVERESTIMATION_SIZES = (1_000, 10_000, 100_000)  # paper Figure 2 (reference: ref-size-ablations)
ABLATION_SIZES = (10_000, 100_000, 1_000_000)  # paper Figure 6 starts at 100k

# The paper's claims that the maze grid tests, as the chapter states them.
CLAIMS = {
    "C1": "FB's values grow as the data shrink or narrow (Figure 2)",
    "C2": "on the didactic maze the conservative variants reach goals that FB cannot (Figure 3)",
    "C3": "on low-quality data the conservative variants beat FB (Figure 4)",
    "C4": "on high-quality data the conservative variants do no worse than FB (Table 1)",
    "C6": "the conservative variants' gain over FB shrinks as the data grow (Figure 6)",
}
REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
OPPOSITE = "not reproduced: the opposite"
NO_DIFFERENCE = "not reproduced: no clear difference"
UNDECIDED = "undecided: runs stopped early"  # every run ended, some by a non-finite loss
KINDS = ("better", "no worse")


class Interval(NamedTuple):
    """A point estimate with its 95 % interval; ``f"{x:.1f}"`` gives ``"3.0 [1.0, 5.0]"``.

    An estimate from a single run has no interval (a bootstrap over one run has zero width, which
    would read as certainty): its bounds are NaN and it reads ``"3.0 (one run)"``."""

    point: float
    low: float
    high: float

    def __format__(self, spec: str) -> str:
        """A width (``>21.1f``) pads the whole text; the rest formats each number (default .3g)."""
        match = re.fullmatch(r"([<>^]?)(\d*)(.*)", spec)
        align, width, number = match.groups()
        number = number or ".3g"
        if np.isnan(self.low) and np.isnan(self.high):
            text = f"{self.point:{number}} (one run)"
        else:
            text = f"{self.point:{number}} [{self.low:{number}}, {self.high:{number}}]"
        return f"{text:{align or '>'}{width}}"

    @classmethod
    def over_runs(cls, point: float, low: float, high: float, runs: int) -> Interval:
        """A bootstrap interval over ``runs`` runs; none (NaN bounds) where there is only one."""
        if runs < 2:
            return cls(float(point), float("nan"), float("nan"))
        return cls(float(point), float(low), float(high))

    @classmethod
    def of(cls, entry: dict[str, Any], runs: int | None = None) -> Interval:
        """From a summary's ``{"point" or "mean": p, "ci95": [low, high]}``, an estimate over
        ``runs`` runs where that is given (:meth:`over_runs`)."""
        point = entry["point"] if "point" in entry else entry["mean"]
        low, high = entry["ci95"]
        return cls.over_runs(point, low, high, 2 if runs is None else runs)


@dataclass(frozen=True)
class Progress:
    """How many of the runs a grid plans for something have landed, and how many of the others
    stopped early (a non-finite loss: they will not land unless the run is changed)."""

    done: int
    planned: int
    stopped: int = 0

    @property
    def complete(self) -> bool:
        return 0 < self.planned == self.done

    def __str__(self) -> str:
        stopped = f"; {self.stopped} stopped early by a non-finite loss" if self.stopped else ""
        return f"{self.done} of {self.planned} runs{stopped}"

    def __add__(self, other: Progress) -> Progress:
        return Progress(
            self.done + other.done, self.planned + other.planned, self.stopped + other.stopped
        )


@dataclass(frozen=True)
class Run:
    """One cell of a grid with the transitions it trains on and, once it has landed, its record."""

    cell: Cell
    size: int | None  # transitions taken from the dataset, before any filter (None: not known)
    record: dict[str, Any] | None = None
    metrics: Path | None = None  # the metrics file beside the record, where there is one
    stopped: str | None = None  # why the run stopped early, where its sweep reported that

    @property
    def done(self) -> bool:
        return self.record is not None

    def axis(self, name: str) -> Any:
        if name not in AXES:
            raise ValueError(f"unknown axis {name!r}; valid choices: {list(AXES)}")
        return self.size if name == "size" else getattr(self.cell, name)


def progress(runs: Iterable[Run]) -> Progress:
    runs = list(runs)
    return Progress(
        sum(run.done for run in runs), len(runs), sum(run.stopped is not None for run in runs)
    )


def group_runs(runs: Iterable[Run], by: Sequence[str] = AXES) -> dict[tuple, list[Run]]:
    """The runs grouped by their values on the axes ``by``, groups in the order they first appear."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(run.axis(name) for name in by), []).append(run)
    return groups


def size_label(n: int) -> str:
    """1000 -> "1k", 100000 -> "100k", 1000000 -> "1M"."""
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def data_label(dataset: str, size: int | None, action_filter: str | None = None) -> str:
    """How the chapter names a dataset: ``rnd-100k``, ``uniform-reset-100k, no_left``; with no
    size known before collecting, the name alone (``medium-replay``)."""
    label = dataset if size is None else f"{dataset}-{size_label(size)}"
    return label + (f", {action_filter}" if action_filter else "")


def method_label(method: str) -> str:
    return get_method(method).label


@dataclass
class Block:
    """One ``[[block]]`` of the grid file: its runs (a cell may be in several blocks)."""

    number: int
    runs: list[Run]

    @property
    def progress(self) -> Progress:
        return progress(self.runs)

    def describe(self) -> str:
        """The block's axes in words: methods, data (domains), seeds."""
        methods = dict.fromkeys(
            method_label(r.cell.method) + (" (one run per task)" if r.cell.task else "")
            for r in self.runs
        )
        data = dict.fromkeys(
            data_label(r.cell.dataset, r.size, r.cell.action_filter) for r in self.runs
        )
        domains = dict.fromkeys(r.cell.domain for r in self.runs)
        seeds = sorted({r.cell.seed for r in self.runs})
        consecutive = len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1))
        seeds_text = f"{seeds[0]}–{seeds[-1]}" if consecutive else ", ".join(map(str, seeds))
        return (
            f"{', '.join(methods)} on {', '.join(data)} ({', '.join(domains)}), seeds {seeds_text}"
        )


@dataclass
class GridResults:
    """The cells of a grid file paired with the records that have landed in its results folder."""

    grid: Grid
    folder: Path
    runs: list[Run]  # the grid's cells, in its order
    blocks: list[Block] = field(default_factory=list)

    @property
    def progress(self) -> Progress:
        return progress(self.runs)

    def select(self, **axes: Any) -> list[Run]:
        """The runs whose axes have the given values; a tuple, list or set is a choice of values.
        ``action_filter=None`` selects the runs without a filter."""
        unknown = sorted(set(axes) - set(AXES))
        if unknown:
            raise ValueError(f"unknown axes {unknown}; valid choices: {list(AXES)}")
        wanted = {
            name: set(v) if isinstance(v, (tuple, list, set, frozenset)) else {v}
            for name, v in axes.items()
        }
        return [r for r in self.runs if all(r.axis(n) in values for n, values in wanted.items())]


def _size(cell: Cell) -> int | None:
    """The transitions a cell takes from its dataset: its subsample, or the whole dataset; None
    where only the collection tells (:meth:`zsrl.data.collect.Collector.transitions`)."""
    from zsrl.data import get_collector
    from zsrl.data.sources import collected_spec

    if cell.n_transitions:
        return cell.n_transitions
    spec = collected_spec(cell.config())
    return get_collector(spec.collector).transitions(spec)


def _landed(cell: Cell, folder: Path) -> Run:
    """The cell's run as ``folder`` holds it: its complete record and metrics once it has landed, or
    why it stopped early where a sweep copied the record of a run that did (:func:`zsrl.sweep.sweep`).

    A record that is not the cell's (another domain, method, seed, dataset, size, filter or task),
    or the cell's trained with another configuration (another scale, length or setting), is an
    error naming the file."""
    path = folder / f"record_{cell.run_name}.json"
    metrics = folder / f"metrics_{cell.run_name}.csv"
    size = _size(cell)
    if not path.exists():
        return Run(cell, size)
    record = read_record(path)
    data, seed = record["config"].get("data", {}), record["config"]["train"]["seed"]
    found = (
        record["domain"],
        record["method"],
        data.get("name"),
        data.get("n_transitions"),
        data.get("action_filter"),
        record.get("single_task"),
        seed,
    )
    planned = (
        cell.domain,
        cell.method,
        cell.dataset,
        cell.n_transitions,
        cell.action_filter,
        cell.task,
        cell.seed,
    )
    if found != planned:
        raise ValueError(
            f"{path} is not the record of cell {cell.run_name}: (domain, method, dataset, "
            f"n_transitions, action_filter, task, seed) are {found}, the grid plans {planned}"
        )
    diff = config_differences(record["config"], cell.config().to_dict(), WHERE_IT_RAN)
    if diff:
        raise ValueError(
            f"{path} was trained with another configuration than cell {cell.run_name}'s: {diff}"
        )
    if not record["complete"]:
        return Run(cell, size, stopped=record.get("stopped"))
    return Run(cell, size, record, metrics if metrics.exists() else None)


def load_grid_results(grid_file: Path | str, folder: Path | str) -> GridResults:
    """The grid file's cells, blocks and the records landed in ``folder`` (which may not exist yet)."""
    grid = load_grid(Path(grid_file))
    folder = Path(folder)
    runs = {}
    for cell in grid.cells:
        runs[cell.run_name] = _landed(cell, folder)
    blocks = [
        Block(number, [runs[cell.run_name] for cell in cells])
        for number, cells in enumerate(grid.blocks(), 1)
    ]
    return GridResults(grid, folder, list(runs.values()), blocks)


# ---------------------------------------------------------------------------------------------------
# The experiments' tables


def _records(runs: Iterable[Run]) -> list[dict[str, Any]]:
    return [run.record for run in runs if run.done]


def _single_task_seeds(runs: list[Run]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of the seeds whose single-task runs have all landed (they combine per seed,
    :func:`zsrl.results.combine_single_task`), and a note for each seed that is still partial."""
    records, notes = [], []
    for (seed,), seed_runs in group_runs(runs, ("seed",)).items():
        done = progress(seed_runs)
        if done.complete:
            records += _records(seed_runs)
        elif done.done:
            notes.append(f"seed {seed}: {done.done} of its {done.planned} single-task runs")
    return records, notes


def method_table(
    runs: list[Run], reps: int = 10_000, seed: int = 0, normalize_to: str | None = None
) -> dict[str, Any]:
    """Each method's aggregates over runs x tasks (best and last evaluation), its probability of
    improving on FB and, with ``normalize_to``, every IQM as a percentage of that method's, from
    the runs that landed. The runs must share their data (domain, dataset, size, action filter):
    methods are compared on the same data; runs on several are a ValueError naming them."""
    data = list(group_runs(runs, DATA_AXES))
    if len(data) > 1:
        raise ValueError(
            f"method_table compares methods on one dataset; the runs have {len(data)} "
            f"({', '.join(DATA_AXES)}): {data}"
        )
    groups, notes, by_method = {}, [], group_runs(runs, ("method",))
    for (method,), method_runs in by_method.items():
        if get_method(method).single_task:
            records, partial = _single_task_seeds(method_runs)
            notes += [f"{method_label(method)} {note}: left out" for note in partial]
        else:
            records = _records(method_runs)
        if records:
            groups[method_label(method)] = records
    table: dict[str, Any] = {
        "progress": progress(runs),
        "methods": {
            method_label(m): {"progress": progress(method_runs)}
            for (m,), method_runs in by_method.items()
        },
        "improvement": {which: {} for which in EVALUATIONS},
        "normalised": {},
        "notes": notes,
    }
    if not groups:
        return table
    reference = "FB" if "FB" in groups else next(iter(groups))
    for which in EVALUATIONS:
        to = normalize_to if normalize_to in groups else None
        comparison = compare_methods(groups, reference, which, reps, seed, normalize_to=to)
        for label, summary in comparison["methods"].items():
            entry = table["methods"][label]
            entry["runs"] = summary["runs"]
            entry[which] = {
                m: Interval.of(a, summary["runs"]) for m, a in summary[which]["aggregates"].items()
            }
            entry.setdefault("scores", {})[which] = np.array(summary[which]["scores"])
        if reference == "FB":
            table["improvement"][which] = {
                label: Interval.of(p)
                for label, p in comparison["probability_of_improvement"].items()
            }
        if normalize_to is not None:
            table["normalised"][which] = comparison.get("normalised") or {
                "to": normalize_to,
                "error": f"no run of {normalize_to} has landed yet (single-task methods: no seed "
                "with every task)",
            }
    return table


def didactic_table(results: GridResults, reps: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Paper Figure 3: the runs without "left" actions. Per dataset, method and task, the success
    rate (the share of episodes ending within the task's success distance) and the mean final
    distance to the goal, each a mean over runs with its 95 % bootstrap interval over runs, at the
    best and the last evaluation (:func:`zsrl.results.goal_statistics`). On the paper's two tasks
    (runs x tasks), the probability that a conservative method's success rates beat FB's (what the
    verdict judges: ``improvement``) and, as a description only, that its final distances are
    shorter than FB's (``closer``)."""
    runs = results.select(action_filter="no_left")
    table: dict[str, Any] = {"progress": progress(runs), "datasets": {}}
    for (dataset, size), data_runs in group_runs(runs, ("dataset", "size")).items():
        entry: dict[str, Any] = {
            "progress": progress(data_runs),
            "rows": [],
            "improvement": {which: {} for which in EVALUATIONS},
            "closer": {which: {} for which in EVALUATIONS},
        }
        summaries = {}
        for (method,), method_runs in group_runs(data_runs, ("method",)).items():
            records = _records(method_runs)
            if not records:
                continue
            summary = summaries[method] = summarize(records, reps, seed)
            for task in summary["tasks"]:
                row = {
                    "method": method_label(method),
                    "task": task,
                    "runs": summary["runs"],
                    "progress": progress(method_runs),
                }
                for which in EVALUATIONS:
                    goal = summary[which]["goals"][task]
                    row[which] = {
                        "success": Interval.of(goal["success_rate"], summary["runs"]),
                        "distance": Interval.of(goal["final_distance"], summary["runs"]),
                    }
                entry["rows"].append(row)
        for method in CONSERVATIVE:
            if method in summaries and "fb" in summaries:
                for which in EVALUATIONS:
                    ours, fb = (_per_run(summaries[m], which) for m in (method, "fb"))
                    for key, sign, name in (("improvement", 1, "success_rate"),
                                            ("closer", -1, "final_distance")):  # fmt: skip
                        p = probability_of_improvement_ci(
                            sign * ours[name], sign * fb[name], reps=reps, seed=seed
                        )
                        entry[key][which][method_label(method)] = Interval(*p)
        table["datasets"][data_label(dataset, size, "no_left")] = entry
    return table


def _per_run(
    summary: dict[str, Any], which: str, tasks: Sequence[str] = DIDACTIC_TASKS
) -> dict[str, np.ndarray]:
    """Each run's success rate and final distance on each of ``tasks``: runs x tasks each."""
    goals = summary[which]["goals"]
    missing = [t for t in tasks if goals.get(t) is None or goals[t]["success_rate"] is None]
    if missing:
        raise ValueError(f"no success rates for tasks {missing}; the runs' goals: {sorted(goals)}")
    return {
        name: np.array([goals[t][name]["per_run"] for t in tasks]).T  # runs x tasks
        for name in ("success_rate", "final_distance")
    }


def high_quality_table(results: GridResults, reps: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """High-quality data (``uniform-reset``, nothing removed): each method's IQM, mean, median and
    optimality gap at the best and the last evaluation, and its probability of improving on FB."""
    return method_table(results.select(dataset=HIGH_QUALITY, action_filter=None), reps, seed)


def aggregate_table(
    results: GridResults, dataset: str, reps: int = 10_000, seed: int = 0
) -> dict[str, Any]:
    """Paper Figure 4 on ``dataset``-100k: every method's rliable aggregates (best and last), its
    probability of improving on FB, and every IQM as a percentage of CQL's where CQL's IQM can be
    a 100 % line (:func:`zsrl.results.normalized_iqm`; otherwise the reason). CQL counts the seeds
    whose four single-task runs have all landed. ``progress_fb_family``: the runs claim C3 needs."""
    if dataset not in LOW_QUALITY:
        raise ValueError(
            f"unknown aggregate dataset {dataset!r}; valid choices: {list(LOW_QUALITY)}"
        )
    runs = results.select(dataset=dataset, size=100_000, action_filter=None)
    table = method_table(runs, reps, seed, normalize_to=method_label("cql"))
    table["data"] = data_label(dataset, 100_000)
    table["progress_fb_family"] = progress(r for r in runs if r.cell.method in FB_FAMILY)
    return table


def profiles(
    table: dict[str, Any], which: str, taus: np.ndarray, reps: int = 2_000, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Performance profiles with bands of a method table's methods, for
    :func:`zsrl.stats.plot_performance_profiles`; methods without runs are left out."""
    return {
        label: (taus, *performance_profile_ci(entry["scores"][which], taus, reps=reps, seed=seed))
        for label, entry in table["methods"].items()
        if "scores" in entry
    }


def task_scores(record: dict[str, Any], which: str) -> dict[str, dict[str, Any]]:
    """Per task, a record's score (IQM over episodes) at its ``which`` evaluation (``best``: the
    highest mean over tasks, or ``last``; :func:`zsrl.results.pick_evaluation`), that evaluation's
    step, and D4RL's normalised score where the domain has one (else None)."""
    entry = pick_evaluation(record, which)
    return {
        task: {
            "step": entry["step"],
            "score": result["score"],
            "normalized": result.get("normalized_score"),
        }
        for task, result in entry["tasks"].items()
    }


def training_curves(runs: Iterable[Run], columns: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The logged ``columns`` of every landed run over training, grouped by method label, one entry
    per run: ``seed``, ``step`` and each of the columns that the run logs (FB logs no ``alpha``, so
    its entries lack it). Runs without a metrics file are left out. For figures such as α and the
    actor's Q over training."""
    curves: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if not run.done or run.metrics is None:
            continue
        metrics = read_metrics(run.metrics)
        entry = {"seed": run.cell.seed, "step": metrics["step"]}  # step: logged rows
        entry |= {name: metrics[name] for name in columns if name in metrics}
        curves.setdefault(method_label(run.cell.method), []).append(entry)
    return curves


def final_actor_q(run: Run) -> tuple[int, float]:
    """(step, value) of the last row of a landed run's metrics: the actor's Q, ``actor_q``."""
    if run.metrics is None:
        raise ValueError(f"run {run.cell.run_name} has a record but no metrics file beside it")
    metrics = read_metrics(run.metrics)
    return int(metrics["step"][-1]), float(metrics["actor_q"][-1])


def overestimation_table(results: GridResults, reps: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Paper Figure 2: FB's actor Q at its last logged step, per dataset (``rnd``, ``random``) and
    size (1k, 10k, 100k): every run's value and their IQM over runs with its bootstrap interval."""
    runs = results.select(
        method="fb", dataset=LOW_QUALITY, size=OVERESTIMATION_SIZES, action_filter=None
    )
    rows = []
    for (dataset, size), group in sorted(group_runs(runs, ("dataset", "size")).items()):
        landed = [run for run in group if run.done]
        finals = [final_actor_q(run) for run in landed]
        values = np.array([q for _, q in finals])  # runs
        interval = (
            Interval.over_runs(
                *aggregate_with_ci(values[:, None], ("iqm",), reps, seed=seed)["iqm"], len(values)
            )
            if len(values)
            else None
        )
        rows.append(
            {
                "dataset": dataset,
                "size": size,
                "progress": progress(group),
                "runs": landed,
                "steps": [step for step, _ in finals],
                "actor_q": values.tolist(),
                "iqm": interval,
            }
        )
    return {"progress": progress(runs), "rows": rows}


def size_table(results: GridResults, reps: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Paper Figure 6: FB, VC-FB and MC-FB on ``rnd`` at 10k, 100k and 1M transitions: the IQM over
    runs x tasks at the best and the last evaluation, with its interval and the scores."""
    runs = results.select(method=FB_FAMILY, dataset="rnd", size=ABLATION_SIZES, action_filter=None)
    rows = []
    order = {m: k for k, m in enumerate(FB_FAMILY)}
    groups = group_runs(runs, ("method", "size"))
    for method, size in sorted(groups, key=lambda key: (order[key[0]], key[1])):
        group = groups[method, size]
        row: dict[str, Any] = {"method": method_label(method), "size": size}
        row["progress"] = progress(group)
        records = _records(group)
        if records:
            summary = summarize(records, reps, seed)
            for which in EVALUATIONS:
                row[which] = Interval.over_runs(
                    summary[which]["iqm"], *summary[which]["ci95"], summary["runs"]
                )
                row.setdefault("scores", {})[which] = np.array(summary[which]["scores"])
        rows.append(row)
    return {"progress": progress(runs), "rows": rows}


# ---------------------------------------------------------------------------------------------------
# Verdicts


def outcome(interval: Interval, null: float, kind: str = "better") -> str:
    """One comparison's outcome from its 95 % interval around the ``null`` value (½ for a
    probability of improvement, 0 for a difference): "better" is reproduced when the interval lies
    above ``null``, the opposite when it lies below, no clear difference when it contains ``null``;
    "no worse" is reproduced unless the interval lies below ``null``."""
    if kind not in KINDS:
        raise ValueError(f"unknown comparison {kind!r}; valid choices: {list(KINDS)}")
    if interval.high < null:
        return OPPOSITE
    if kind == "no worse" or interval.low > null:
        return REPRODUCED
    return NO_DIFFERENCE


def combine_outcomes(outcomes: Sequence[str]) -> str:
    """A claim's outcome from its comparisons': all reproduced, reproduced; any the opposite, the
    opposite; some reproduced, partly (with how many); none, no clear difference."""
    if not outcomes:
        raise ValueError("a claim needs at least one comparison")
    unknown = sorted(set(outcomes) - {REPRODUCED, OPPOSITE, NO_DIFFERENCE})
    if unknown:
        raise ValueError(f"unknown outcomes {unknown}")
    reproduced = sum(o == REPRODUCED for o in outcomes)
    if reproduced == len(outcomes):
        return REPRODUCED
    if OPPOSITE in outcomes:
        return f"{OPPOSITE} in {outcomes.count(OPPOSITE)} of {len(outcomes)} comparisons"
    if reproduced:
        return f"{PARTLY} ({reproduced} of {len(outcomes)} comparisons)"
    return NO_DIFFERENCE


@dataclass(frozen=True)
class Comparison:
    """One interval that a claim is judged by."""

    what: str  # "P(VC-FB > FB), rnd-100k"
    interval: Interval
    null: float  # 0.5 for a probability of improvement, 0 for a difference
    kind: str = "better"

    @property
    def outcome(self) -> str:
        return outcome(self.interval, self.null, self.kind)

    def __str__(self) -> str:
        return f"{self.what}: {self.interval:.2f}, {self.outcome}"


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict: pending until every planned run has landed, then from its comparisons."""

    claim: str
    which: str | None  # the evaluation judged (None: values at the last logged step)
    progress: Progress
    comparisons: tuple[Comparison, ...] = ()

    @property
    def statement(self) -> str:
        return CLAIMS[self.claim]

    @property
    def outcome(self) -> str:
        p = self.progress
        if p.stopped and p.done + p.stopped == p.planned:
            return f"{UNDECIDED} ({p})"
        if not p.complete:
            return f"pending ({p})"
        return combine_outcomes([c.outcome for c in self.comparisons])

    def __str__(self) -> str:
        which = f", {self.which} evaluation" if self.which else ""
        return f"{self.claim} {self.statement}{which}: {self.outcome}"


def _verdict(
    claim: str, which: str | None, done: Progress, comparisons: Callable[[], list[Comparison]]
) -> Verdict:
    """The claim's verdict; ``comparisons`` is called only once every planned run is in."""
    if which is not None and which not in EVALUATIONS:
        raise ValueError(f"unknown evaluation {which!r}; valid choices: {list(EVALUATIONS)}")
    return Verdict(claim, which, done, tuple(comparisons()) if done.complete else ())


def verdict_values(table: dict[str, Any], reps: int = 10_000, seed: int = 0) -> Verdict:
    """C1 from :func:`overestimation_table`: FB's final actor Q is higher at 1k than at 100k
    transitions on each dataset, and higher on ``random`` (the narrower data) than on ``rnd`` at
    every size; each a probability of improvement over runs."""

    def comparisons() -> list[Comparison]:
        q = {(r["dataset"], r["size"]): np.array(r["actor_q"])[:, None] for r in table["rows"]}
        small, large = OVERESTIMATION_SIZES[0], OVERESTIMATION_SIZES[-1]
        pairs = [
            (f"P(Q at {size_label(small)} > Q at {size_label(large)}), {d}", (d, small), (d, large))
            for d in LOW_QUALITY
        ]
        pairs += [
            (f"P(Q on random > Q on rnd), {size_label(n)}", ("random", n), ("rnd", n))
            for n in OVERESTIMATION_SIZES
        ]
        return [
            Comparison(
                what, Interval(*probability_of_improvement_ci(q[a], q[b], reps, seed=seed)), 0.5
            )
            for what, a, b in pairs
        ]

    return _verdict("C1", None, table["progress"], comparisons)


def verdict_didactic(table: dict[str, Any], which: str = "best") -> Verdict:
    """C2 from :func:`didactic_table`: on each dataset, each conservative method's success rates
    on the paper's two tasks beat FB's."""

    def comparisons() -> list[Comparison]:
        return [
            Comparison(f"P({label} > FB) in success rate, {data}", p, 0.5)
            for data, entry in table["datasets"].items()
            for label, p in entry["improvement"][which].items()
        ]

    return _verdict("C2", which, table["progress"], comparisons)


def verdict_low_quality(tables: Sequence[dict[str, Any]], which: str = "best") -> Verdict:
    """C3 from :func:`aggregate_table` on each low-quality dataset: each conservative method's
    returns beat FB's (probability of improvement over runs x tasks)."""
    done = sum((t["progress_fb_family"] for t in tables), Progress(0, 0))
    conservative = [method_label(m) for m in CONSERVATIVE]

    def comparisons() -> list[Comparison]:
        return [
            Comparison(f"P({label} > FB), {t['data']}", t["improvement"][which][label], 0.5)
            for t in tables
            for label in conservative
        ]

    return _verdict("C3", which, done, comparisons)


def verdict_high_quality(table: dict[str, Any], which: str = "best") -> Verdict:
    """C4 from :func:`high_quality_table`: each conservative method is no worse than FB (the
    interval of its probability of improving on FB does not lie below ½)."""

    def comparisons() -> list[Comparison]:
        return [
            Comparison(
                f"P({label} > FB), {data_label(HIGH_QUALITY, 100_000)}",
                table["improvement"][which][label],
                0.5,
                "no worse",
            )
            for label in (method_label(m) for m in CONSERVATIVE)
        ]

    fb_family = [method_label(m) for m in FB_FAMILY]
    done = sum(
        (e["progress"] for label, e in table["methods"].items() if label in fb_family),
        Progress(0, 0),
    )
    return _verdict("C4", which, done, comparisons)


def verdict_size(
    table: dict[str, Any], which: str = "best", reps: int = 10_000, seed: int = 0
) -> Verdict:
    """C6 from :func:`size_table`: for each conservative method and each smaller size, its IQM gap
    over FB is above 0 (there is a gain to shrink) and exceeds its gap at the largest size; each
    interval comes from independent stratified-bootstrap replicates of the IQMs it combines."""

    def comparisons() -> list[Comparison]:
        rows = {(r["method"], r["size"]): r["scores"][which] for r in table["rows"]}
        replicates = {
            key: aggregate_replicates(scores, "iqm", reps, seed=seed + k)  # independent draws
            for k, (key, scores) in enumerate(rows.items())
        }
        points = {key: iqm(scores) for key, scores in rows.items()}
        largest, out = ABLATION_SIZES[-1], []
        for label in (method_label(m) for m in CONSERVATIVE):

            def gap(values: dict, n: int, label: str = label) -> Any:
                return values[label, n] - values["FB", n]

            for size in ABLATION_SIZES[:-1]:
                differences = {  # name -> (point, reps)
                    f"{label}'s IQM gap over FB at {size_label(size)}": (
                        gap(points, size),
                        gap(replicates, size),
                    ),
                    f"{label}'s IQM gap over FB at {size_label(size)} minus at "
                    f"{size_label(largest)}": (
                        gap(points, size) - gap(points, largest),
                        gap(replicates, size) - gap(replicates, largest),
                    ),
                }
                for what, (point, draws) in differences.items():
                    low, high = np.percentile(draws, [2.5, 97.5])
                    out.append(Comparison(what, Interval(point, float(low), float(high)), 0.0))
        return out

    return _verdict("C6", which, table["progress"], comparisons)
