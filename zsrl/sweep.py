"""Grids of runs: every cell of a grid file through the one trainer, on a process pool or on Ray.

A grid file (TOML) lists blocks of cells. Each block is the product of its list-valued keys; keys at
the top of the file are defaults for every block::

    domain = "point_mass_maze"
    scale = "book"

    [[block]]                       # the didactic maze: 3 methods x 5 seeds = 15 cells
    method = ["fb", "vcfb", "mcfb"]
    dataset = "uniform-reset"
    action_filter = "no_left"
    seed = [0, 1, 2, 3, 4]

    [[block]]
    name = "mean-target"            # optional: a label, first in the cells' directory names
    method = "fb"
    dataset = "rnd"
    n_transitions = [10_000, 100_000]
    seed = [0, 1, 2]
    overrides = ["agent.target_heads='mean'"]   # --set values, for every cell of the block

A single-task method (``cql``, ``td3``) gets one cell per task of ``tasks`` (default: every task of
the domain); the zero-shot methods get one cell that evaluates every task. Every cell is resolved and
validated before anything runs, so a bad value in the file is one error naming it.

Running a grid trains each cell in its own directory under ``out_root`` with one torch thread, skips
cells whose record is complete, resumes interrupted cells from their checkpoints (the trainer's exact
resume), and optionally copies every record and metrics file into a results folder. Cells run on a
local process pool by default, or as Ray tasks (``backend="ray"``) on an existing cluster (``address``)
or on a Ray instance started here.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
import shutil
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from statistics import fmean
from typing import Any

from zsrl.config import RunConfig, resolve
from zsrl.io import atomic_write_json
from zsrl.methods import get_method, method_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BACKENDS = ("local", "ray")
# Keys of a grid file: defaults at the top level, axes or values in each [[block]].
AXES = ("method", "dataset", "n_transitions", "action_filter", "seed")
SETTINGS = ("domain", "scale", "steps", "tasks", "overrides", "name")
GRID_KEYS = AXES + SETTINGS


@dataclass(frozen=True)
class Cell:
    """One run of a grid: what ``python -m zsrl train`` would be given."""

    method: str
    dataset: str
    seed: int
    domain: str = "point_mass_maze"
    scale: str = "book"
    n_transitions: int | None = None
    action_filter: str | None = None
    task: str | None = None  # the one task of a single-task method
    steps: int | None = None
    overrides: tuple[str, ...] = ()
    name: str = ""  # the block's label

    @property
    def run_name(self) -> str:
        """The cell's directory name: label, method, dataset, size, filter, task, seed."""
        parts = [self.name] if self.name else []
        parts += [self.method, self.dataset]
        parts += [f"n{self.n_transitions}"] if self.n_transitions else []
        parts += [self.action_filter] if self.action_filter else []
        parts += [self.task] if self.task else []
        return "_".join([*parts, f"seed{self.seed}"])

    def config(self) -> RunConfig:
        """The resolved, validated configuration of this cell (one torch thread)."""
        return resolve(
            self.method,
            self.domain,
            self.scale,
            dataset=self.dataset,
            n_transitions=self.n_transitions,
            action_filter=self.action_filter,
            seed=self.seed,
            steps=self.steps,
            threads=1,
            tasks=[self.task] if self.task else None,
            overrides=list(self.overrides),
        )

    def command(self, out: Path) -> str:
        """The ``python -m zsrl train`` command that runs this cell alone."""
        words = ["python -m zsrl train", f"--method {self.method}", f"--domain {self.domain}"]
        words += [f"--dataset {self.dataset}", f"--scale {self.scale}", f"--seed {self.seed}"]
        words += [f"--n-transitions {self.n_transitions}"] if self.n_transitions else []
        words += [f"--action-filter {self.action_filter}"] if self.action_filter else []
        words += [f"--tasks {self.task}"] if self.task else []
        words += [f"--steps {self.steps}"] if self.steps else []
        words += ["--threads 1", f"--out {out}"]
        if self.overrides:
            words += ["--set", *(f'"{o}"' for o in self.overrides)]
        return " ".join(words)


@dataclass
class Grid:
    """The cells of a grid file, in the file's order."""

    cells: list[Cell]
    path: Path | None = None
    text: str = ""

    def __len__(self) -> int:
        return len(self.cells)

    def blocks(self) -> list[list[Cell]]:
        """The cells of each ``[[block]]`` of the grid file, in its order; a cell that two blocks
        share is in both. A grid made without a file's text is one block."""
        if not self.text:
            return [list(self.cells)]
        data = tomllib.loads(self.text)
        top = {key: value for key, value in data.items() if key != "block"}
        return [
            parse_grid({**top, "block": [block]}, f"{self.path or 'grid'}, block {number}")
            for number, block in enumerate(data["block"], 1)
        ]

    def select(self, patterns: Iterable[str] | None) -> list[Cell]:
        """The cells whose directory names match any of the shell-style ``patterns`` (``fb_*``,
        ``*_seed[0-2]``), in the file's order; None: every cell. A pattern that matches no cell is
        an error listing the cells."""
        if patterns is None:
            return list(self.cells)
        patterns = list(patterns)
        names = [cell.run_name for cell in self.cells]
        unmatched = [p for p in patterns if not fnmatch.filter(names, p)]
        if unmatched:
            raise ValueError(f"no cell of the grid matches {unmatched}; its cells: {names}")
        return [c for c in self.cells if any(fnmatch.fnmatchcase(c.run_name, p) for p in patterns)]


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


# what each grid key holds: the type of one value, its description, and whether a list may stand
_KINDS: dict[str, tuple[Any, str, bool]] = {
    "method": (str, "a string", True),
    "dataset": (str, "a string", True),
    "n_transitions": (int | str, 'an integer (or "" for all)', True),
    "action_filter": (str, "a string", True),
    "seed": (int, "an integer", True),
    "domain": (str, "a string", False),
    "scale": (str, "a string", False),
    "steps": (int, "an integer", False),
    "name": (str, "a string", False),
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a block's name: one plain directory-name part


def _check_values(values: dict[str, Any], where: str) -> None:
    """A ValueError naming the key where a block's value has the wrong type: a string for a list
    of tasks, a number for a method, an empty list, a name that is not a plain directory name."""
    for key, (kind, shape, listable) in _KINDS.items():
        if key not in values:
            continue
        value = values[key]
        items = value if listable and isinstance(value, list) else [value]
        if not items or not all(isinstance(v, kind) and not isinstance(v, bool) for v in items):
            raise ValueError(
                f"{where}: {key} must be {shape}"
                + (" or a non-empty list of them" if listable else "")
                + f", got {value!r}"
            )
    tasks = values.get("tasks", [])
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise ValueError(f"{where}: tasks must be a list of task names, got {tasks!r}")
    if "name" in values and values["name"] and not _NAME.fullmatch(values["name"]):
        raise ValueError(
            f"{where}: name {values['name']!r} must be a plain directory name (letters, digits, "
            "'_', '.', '-'; no '/'), since it leads the cells' directory names"
        )


def _none_if_empty(value: Any) -> Any:
    """TOML has no null: "" or "none" stands for no value (no subsample, no filter)."""
    return None if isinstance(value, str) and value in ("", "none") else value


def parse_grid(data: dict[str, Any], where: str = "grid") -> list[Cell]:
    """The cells that a parsed grid file describes; a bad key or value is a ValueError naming it."""
    top = {k: v for k, v in data.items() if k != "block"}
    unknown = sorted(set(top) - set(GRID_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; valid keys: {sorted(GRID_KEYS)}")
    blocks = data.get("block", [])
    if not isinstance(blocks, list) or not blocks:
        raise ValueError(f"{where}: no [[block]] of cells; a grid needs at least one")
    cells: list[Cell] = []
    for number, block in enumerate(blocks, 1):
        if not isinstance(block, dict):
            raise ValueError(
                f"{where}: block {number} is {block!r}, not a table of keys ([[block]] sections)"
            )
        unknown = sorted(set(block) - set(GRID_KEYS))
        if unknown:
            raise ValueError(
                f"{where}, block {number}: unknown keys {unknown}; valid keys: {sorted(GRID_KEYS)}"
            )
        values = {**top, **block}
        for key in ("method", "dataset", "seed"):
            if key not in values:
                raise ValueError(f"{where}, block {number}: no {key!r}; every block needs one")
        _check_values(values, f"{where}, block {number}")
        overrides = values.get("overrides", [])
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ValueError(
                f"{where}, block {number}: overrides must be a list of 'section.key=value' "
                f"strings, got {overrides!r}"
            )
        axes = [_listed(values.get(key)) for key in AXES]
        for method, dataset, n, action_filter, seed in itertools.product(*axes):
            # an unknown method is reported by _checked, with the cell's name
            if method in method_names() and get_method(method).single_task:
                tasks = values.get("tasks") or _domain_tasks(values.get("domain"))
            else:
                tasks = [None]
            for task in tasks:
                cells.append(
                    Cell(
                        method=method,
                        dataset=dataset,
                        seed=seed,
                        domain=values.get("domain", "point_mass_maze"),
                        scale=values.get("scale", "book"),
                        n_transitions=_none_if_empty(n),
                        action_filter=_none_if_empty(action_filter),
                        task=task,
                        steps=values.get("steps"),
                        overrides=tuple(overrides),
                        name=values.get("name", ""),
                    )
                )
    return _checked(cells, where)


def _domain_tasks(domain: str | None) -> list[str]:
    from zsrl.envs import get_domain

    return list(get_domain(domain or "point_mass_maze").tasks)


def _checked(cells: list[Cell], where: str) -> list[Cell]:
    """Resolve every cell (a bad value fails here, before anything runs); drop exact repeats."""
    seen: dict[str, Cell] = {}
    for cell in cells:
        try:
            cell.config()
        except (ValueError, TypeError) as error:
            raise ValueError(f"{where}, cell {cell.run_name}: {error}") from error
        other = seen.setdefault(cell.run_name, cell)
        if other != cell:
            raise ValueError(
                f"{where}: two different cells share the directory {cell.run_name!r}; "
                "give one of their blocks a name"
            )
    return list(seen.values())


def load_grid(path: Path) -> Grid:
    """Read and check a grid file (TOML)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"grid file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"grid file {path} is not UTF-8 text: {error}") from None
    except OSError as error:  # a directory, no permission
        raise ValueError(f"grid file {path} cannot be read: {error.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"grid file {path} is not valid TOML: {error}") from error
    return Grid(parse_grid(data, str(path)), path, text)


# ---------------------------------------------------------------------------------------------------
# Running


def cell_status(out: Path) -> str:
    """``done`` (a complete record), ``partial`` (a checkpoint or record to resume) or ``todo``."""
    return _status_from(out, _read_json(out / "record.json"))


def _status_from(out: Path, record: dict | None) -> str:
    """`cell_status` given the run folder's record, already read (None where it has none)."""
    if record is not None and record.get("complete"):
        return "done"
    to_resume = record is not None or any(
        (out / f).exists() for f in ("checkpoint.pt", "record.json")
    )
    return "partial" if to_resume else "todo"


@dataclass
class CellResult:
    """What a finished (or failed) cell reports back."""

    run_name: str
    out: str
    status: str  # done, skipped (was done), failed, or not selected (``only``)
    best: float | None = None
    last: float | None = None
    error: str = ""

    def line(self) -> str:
        """One line for a log: status, cell, best and last mean return (or the error)."""
        scores = "" if self.best is None else f"best {self.best:7.1f}  last {self.last:7.1f}"
        return f"{self.status:8s} {self.run_name:48s} {scores}{self.error}"


def run_cell(cell: Cell, out: str, data_root: str | None = None) -> CellResult:
    """Train one cell to completion in ``out`` (resuming if it holds a checkpoint); never raises."""
    from zsrl.data.sources import prepare_dataset
    from zsrl.train import Trainer

    try:
        cfg, root = cell.config(), Path(data_root) if data_root else None
        trainer = Trainer(
            cfg,
            Path(out),
            command=cell.command(Path(out)),
            data_root=root,
            progress=False,
            dataset=prepare_dataset(cfg, root, progress=False),
        )
        record = trainer.run(resume=True)
    except Exception as error:  # reported per cell; the sweep goes on with the others
        return CellResult(cell.run_name, out, "failed", error=f"{type(error).__name__}: {error}")
    return CellResult(
        cell.run_name, out, "done", record["best"]["mean_score"], record["last"]["mean_score"]
    )


def _prepare_datasets(cells: Iterable[Cell], data_root: Path | None) -> None:
    """Collect every dataset the cells need once, here, so that no two workers collect one file."""
    from zsrl.data import load_or_collect
    from zsrl.data.sources import collected_spec

    specs = {}
    for cell in cells:
        spec = collected_spec(cell.config())
        specs[spec.name] = spec
    for spec in specs.values():
        load_or_collect(spec, root=data_root)


def _run_local(jobs: list[tuple[Cell, str]], workers: int, data_root: str | None):
    """Cells on a pool of ``workers`` processes (spawned: no torch state shared with this one)."""
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_cell, cell, out, data_root) for cell, out in jobs]
        for future in as_completed(futures):
            yield future.result()


def _run_ray(jobs: list[tuple[Cell, str]], address: str | None, data_root: str | None):
    """Cells as Ray tasks of one CPU each, on the cluster at ``address`` or on a local Ray."""
    try:
        import ray
    except ImportError as error:
        raise ValueError(
            "backend 'ray' needs Ray: pip install 'ray[default]' (or the 'sweep' extra)"
        ) from error
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1, max_retries=0)(run_cell)
    pending = [remote.remote(cell, out, data_root) for cell, out in jobs]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        yield ray.get(ready[0])


def check_sweep_options(
    backend: str, workers: int, out_root: Path | None = None, results: Path | None = None
) -> None:
    """A known backend, at least one worker, and folders (or none yet) where the runs and the
    collected results go, or a ValueError naming the value: checked before any cell trains."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid choices: {list(BACKENDS)}")
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    for option, folder in (("--out-root", out_root), ("--results", results)):
        if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
            raise ValueError(f"{option} {folder} is a file, not a folder")


def sweep(
    grid: Grid,
    out_root: Path,
    backend: str = "local",
    workers: int = 2,
    address: str | None = None,
    data_root: Path | None = None,
    results: Path | None = None,
    progress: bool = True,
    only: Iterable[str] | None = None,
    first: Iterable[str] | None = None,
) -> list[CellResult]:
    """Run every cell of ``grid`` not yet done; return one result per cell, in the grid's order.

    ``only``: run just the cells matching these name patterns (:meth:`Grid.select`), e.g. to split
    a grid between two sweeps that share its ``out_root``; the others are left as they are.
    ``first``: start the cells matching these patterns before the others (one seed of every method
    first, so that a figure can be drawn early), in one pool that then goes on with the rest, so
    no worker waits; within each group, the grid's order.
    ``results``: a folder that receives ``record_<cell>.json`` and ``metrics_<cell>.csv`` of every
    finished cell and ``grid.json`` (the grid file, its cells and their statuses, read from
    ``out_root`` for the cells not selected).
    """
    from tqdm import tqdm

    check_sweep_options(backend, workers, out_root, results)
    from zsrl.data import data_dir

    out_root = Path(out_root).resolve()  # workers (and Ray's) may start elsewhere
    data_root = Path(data_root or data_dir()).resolve()
    selected = grid.select(only)
    outs = {cell.run_name: out_root / cell.run_name for cell in grid.cells}
    done = {name for name, out in outs.items() if cell_status(out) == "done"}
    jobs = [(c, str(outs[c.run_name])) for c in selected if c.run_name not in done]
    if first is not None:
        early = {cell.run_name for cell in grid.select(first)}
        jobs.sort(key=lambda job: job[0].run_name not in early)  # stable: the grid's order within
    by_name = {name: CellResult(name, str(outs[name]), "skipped") for name in done}
    by_name |= {
        c.run_name: CellResult(c.run_name, str(outs[c.run_name]), "not selected")
        for c in grid.cells
        if c.run_name not in done and c not in selected
    }
    if jobs:
        _prepare_datasets((cell for cell, _ in jobs), data_root)
        finished = (
            _run_local(jobs, workers, str(data_root))
            if backend == "local"
            else _run_ray(jobs, address, str(data_root))
        )
        bar = tqdm(
            total=len(selected),
            initial=len(selected) - len(jobs),
            desc="grid",
            unit="cell",
            disable=not progress,
        )
        for count, result in enumerate(finished, len(selected) - len(jobs) + 1):
            by_name[result.run_name] = result
            bar.update(1)
            bar.write(f"[{count}/{len(selected)}] {result.line()}")  # a line per cell, bar or not
            bar.set_postfix(failed=sum(r.status == "failed" for r in by_name.values()))
            if results is not None and (result.status == "done" or _stopped(Path(result.out))):
                _collect(Path(result.out), result.run_name, Path(results))
        bar.close()
    ordered = [by_name[cell.run_name] for cell in grid.cells]
    if results is not None:
        for result in ordered:
            if result.status == "skipped":
                _collect(Path(result.out), result.run_name, Path(results))
        atomic_write_json(
            Path(results) / "grid.json",
            {
                "grid_file": str(grid.path) if grid.path else None,
                "grid": grid.text,
                "cells": [asdict(c) | {"run_name": c.run_name} for c in grid.cells],
                "results": [asdict(r) for r in ordered],
            },
        )
    return ordered


def _stopped(out: Path) -> bool:
    """Whether the run in ``out`` stopped early for good (a non-finite loss), as its record says."""
    return "stopped" in (_read_json(out / "record.json") or {})


def _collect(out: Path, run_name: str, results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "record.json", results / f"record_{run_name}.json")
    if (out / "metrics.csv").exists():
        shutil.copyfile(out / "metrics.csv", results / f"metrics_{run_name}.csv")


@dataclass
class GridStatus:
    """How far a grid has come: cells by status, with what the finished ones took and how far the
    interrupted ones got (the share of their updates done, from their records)."""

    done: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    wall_hours: dict[str, float] = field(default_factory=dict)  # done cells' records' wall times
    share_done: dict[str, float] = field(default_factory=dict)  # partial cells', in [0, 1]

    def hours_left(self, grid: Grid) -> float | None:
        """The cell-hours the cells not done still need (divide by the workers for wall time), at
        the mean wall time measured for each (domain, method), or for all finished cells where a
        pair has none; None before any cell has finished."""
        if not self.wall_hours:
            return None
        cells = {cell.run_name: cell for cell in grid.cells}
        measured: dict[tuple[str, str], list[float]] = {}
        for name, hours in self.wall_hours.items():
            measured.setdefault((cells[name].domain, cells[name].method), []).append(hours)
        overall = fmean(self.wall_hours.values())
        return sum(
            fmean(measured.get((cells[name].domain, cells[name].method), [overall]))
            * (1 - self.share_done.get(name, 0.0))
            for name in (*self.partial, *self.todo)
        )


def grid_status(grid: Grid, out_root: Path) -> GridStatus:
    status = GridStatus()
    for cell in grid.cells:
        out = Path(out_root) / cell.run_name
        record = _read_json(out / "record.json")
        state = _status_from(out, record)
        getattr(status, state).append(cell.run_name)
        if record is None:
            continue
        if state == "done" and record.get("wall_time_s") is not None:
            status.wall_hours[cell.run_name] = record["wall_time_s"] / 3600
        elif state == "partial" and record.get("steps_done") is not None:
            steps = record.get("config", {}).get("train", {}).get("steps") or 0
            status.share_done[cell.run_name] = (
                min(1.0, record["steps_done"] / steps) if steps else 0
            )
    return status


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None where there is none, or it is unreadable or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None
