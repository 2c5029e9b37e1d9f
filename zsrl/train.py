"""The training loop: progress bar, periodic zero-shot evaluation, metrics, checkpoints, exact resume.

A run lives in one directory:

- ``checkpoint.pt``: weights, optimiser states, RNG state, step, elapsed time (``weights_only`` loadable);
- ``best_model.pt``: the model's weights at its best evaluation so far (highest mean score over
  tasks, the paper's protocol), for drawing and re-evaluating the policy a result quotes;
- ``metrics.csv``: training metrics, gathered every ``log_every`` updates;
- ``record.json``: the result record — resolved config, scale, versions, device, wall time, command,
  per-task returns at every evaluation, and the last and best evaluations.

Stopping at step k and resuming gives the same weights as an uninterrupted run: all training
randomness comes from torch's global RNG, saved in the checkpoint, and evaluation never touches it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from zsrl.agents import Agent, Batch, TrainingData, build_agent
from zsrl.config import RunConfig, config_differences
from zsrl.data import Dataset
from zsrl.data.sources import prepare_dataset
from zsrl.envs import get_domain
from zsrl.evaluate import evaluate
from zsrl.io import atomic_write_bytes, atomic_write_json, atomic_writer, temporary_files
from zsrl.methods import get_method
from zsrl.probe import ValueProbe
from zsrl.record import environment_info, read_record, seal

CHECKPOINT = "checkpoint.pt"
BEST_MODEL = "best_model.pt"
METRICS = "metrics.csv"
RECORD = "record.json"
OWNER = "run.json"  # the configuration of the run this folder belongs to, written when it starts
RUN_FILES = (CHECKPOINT, BEST_MODEL, METRICS, RECORD, OWNER)
VIDEOS = "videos"  # a run's rendered rollouts (python -m zsrl video), removed when it restarts


# What a resumed run may change: its length, its device, its threads.
RESUMABLE = ("train.steps", "train.device", "train.threads")


class RunFolderError(ValueError):
    """A run folder holds another run, or files zsrl did not write."""


class CheckpointError(RuntimeError):
    """A checkpoint is truncated, corrupt, or belongs to a different configuration."""


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite; the last good checkpoint is left as it was."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}; valid devices: auto, cpu, cuda, mps") from error
    present = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not present.get(device.type, False):
        usable = [kind for kind, ok in present.items() if ok]
        raise ValueError(f"device {name!r} is not available here; usable devices: auto, {usable}")
    return device


# Checkpoints and best weights start with this line and the SHA-256 of what follows (torch.save's
# bytes), so that one atomic write carries the file and its checksum together.
SEALED = b"zsrl-sha256:"


def _save_atomically(state: dict[str, Any], path: Path) -> None:
    """torch.save into memory, seal with its SHA-256, then one atomic write: a crash never leaves
    half a file, and damage done later is caught on load."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    atomic_write_bytes(path, SEALED + digest + b"\n" + payload)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects, after checking its checksum (files
    written before checksums have none); damage is a :class:`CheckpointError` naming the file."""
    data = Path(path).read_bytes()
    if data.startswith(SEALED):
        head = len(SEALED)
        digest, payload = data[head : head + 64], data[head + 65 :]
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            raise CheckpointError(f"checkpoint {path} does not match its checksum: it is damaged")
        data = payload
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {error}") from error


def value_probe(cfg: RunConfig, dataset: Dataset, device: torch.device) -> ValueProbe | None:
    """The value probe of a run on ``dataset``, for methods with an action value (every method but
    GC-IQL's value-only one), else None."""
    context_dim = get_method(cfg.method).q_context_dim
    if context_dim is None:
        return None
    return ValueProbe.from_arrays(
        dataset.observation, dataset.action, context_dim(cfg.agent), device=device
    )


@dataclass
class Trainer:
    """Runs one configuration in ``out_dir``, resuming from its checkpoint if there is one."""

    cfg: RunConfig
    out_dir: Path
    command: str = ""
    data_root: Path | None = None
    progress: bool = True
    # The prepared training data (zsrl.data.sources.prepare_dataset); None prepares them here.
    dataset: Dataset | None = None
    # Replace the run files of a folder that holds another run or files zsrl did not write (these
    # stay); without it such a folder is refused.
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.data_root = Path(self.data_root) if self.data_root is not None else None
        self.cfg.validate()
        self.device = resolve_device(self.cfg.train.device)
        if self.cfg.train.threads:
            torch.set_num_threads(self.cfg.train.threads)
        self.domain = get_domain(self.cfg.domain)
        self.task_names = self.cfg.eval.tasks or list(self.domain.tasks)
        if self.dataset is None:
            self.dataset = prepare_dataset(self.cfg, self.data_root, self.progress)
        torch.manual_seed(self.cfg.train.seed)
        self.agent: Agent = build_agent(
            self.cfg.method,
            self.cfg.agent,
            self.domain.obs_dim,
            self.domain.action_dim,
            self.device,
        )
        self.model = self.agent.model
        obs = torch.as_tensor(self.dataset.observation, device=self.device)
        self.model.set_obs_stats(obs)
        self.probe = value_probe(self.cfg, self.dataset, self.device)
        self.step = 0
        self.checkpoint_step: int | None = None  # the step of the latest checkpoint on disk
        self.warnings: list[str] = []  # values past train.warn_above, once per metric
        self._warned: set[str] = set()  # the metrics warned about
        self.elapsed = 0.0
        self.evaluations: list[dict[str, Any]] = []
        self.pending: list[dict[str, torch.Tensor]] = []
        self._data_tensors()

    # ----------------------------------------------------------------------------- data
    def _data_tensors(self) -> None:
        """Standardised observations, actions, next observations (and the single task's rewards,
        relabelled from physics) resident on the device."""
        as_tensor = lambda x: torch.as_tensor(x, dtype=torch.float32, device=self.device)  # noqa: E731
        task = self.cfg.single_task
        with torch.no_grad():
            self.data = TrainingData(
                obs=self.model.normalize(as_tensor(self.dataset.observation)),  # n x O
                action=as_tensor(self.dataset.action),  # n x A
                next_obs=self.model.normalize(as_tensor(self.dataset.next_observation)),  # n x O
                reward=as_tensor(self.dataset.rewards(self.domain.task(task)))
                if "rewards" in get_method(self.cfg.method).needs
                else None,
                episode=self.dataset.episode,  # n
                step=self.dataset.step,  # n
                not_done=None  # data without terminals bootstrap everywhere
                if self.dataset.terminal is None
                else 1.0 - as_tensor(self.dataset.terminal),  # n
            )

    def sample_batch(self) -> Batch:
        return self.agent.sample_batch(self.data)

    # ------------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT

    def save_checkpoint(self) -> None:
        state = {
            "step": self.step,
            "elapsed": self.elapsed,
            "config": json.dumps(self.cfg.to_dict()),
            "agent": self.agent.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "evaluations": json.dumps(self.evaluations),
        }
        _save_atomically(state, self.checkpoint_path)
        self.checkpoint_step = self.step

    def resume(self) -> bool:
        """Restore the state of ``out_dir``'s checkpoint; False if there is none."""
        if not self.checkpoint_path.exists():
            return False
        state = load_checkpoint(self.checkpoint_path)
        diff = config_differences(json.loads(state["config"]), self.cfg.to_dict(), RESUMABLE)
        if diff:
            raise CheckpointError(
                f"checkpoint {self.checkpoint_path} was made with a different configuration "
                f"({diff}); use another output directory or --no-resume"
            )
        self.agent.load_state_dict(state["agent"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.evaluations = json.loads(state["evaluations"])
        self.checkpoint_step = self.step
        self._truncate_metrics()
        return True

    # ------------------------------------------------------------------------- the folder
    def _owner(self) -> dict[str, Any] | None:
        """The configuration of the run living in ``out_dir``: from its owner file, else (runs made
        before owner files) its checkpoint's or its record's; None where no run file is there."""
        out = self.out_dir
        try:
            if (out / OWNER).exists():
                return json.loads((out / OWNER).read_text())["config"]
            if self.checkpoint_path.exists():
                return json.loads(load_checkpoint(self.checkpoint_path)["config"])
            if (out / RECORD).exists():
                return read_record(out / RECORD)["config"]
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise RunFolderError(f"{out} holds run files zsrl cannot read ({error})") from None
        if any((out / name).exists() for name in RUN_FILES):
            return {}  # run files whose run cannot be told: another run's, as far as we know
        return None

    def _claim(self, resume: bool) -> None:
        """Make ``out_dir`` this run's: refuse a folder that holds another run or files zsrl did
        not write (unless ``overwrite``), remove what a killed write left behind, start afresh
        where asked, and write the owner file."""
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise RunFolderError(f"--out {out} is a file, not a folder")
        out.mkdir(parents=True, exist_ok=True)
        for stale in temporary_files(out):
            stale.unlink(missing_ok=True)
        try:
            owner = self._owner()
        except RunFolderError:
            if not self.overwrite:
                raise
            owner = {}  # unreadable run files, replaced as asked
        # a run's videos are zsrl's; a folder of that name where no run is may be anyone's
        ours = (*RUN_FILES, *_SIDECARS, *((VIDEOS,) if owner is not None else ()))
        foreign = sorted(p.name for p in out.iterdir() if p.name not in ours)
        diff = config_differences(owner, self.cfg.to_dict(), RESUMABLE) if owner else ""
        same = owner is None or (bool(owner) and not diff)
        if (foreign or not same) and not self.overwrite:
            what = (
                f"files zsrl did not write {foreign[:4]}"
                if foreign
                else "another run" + (f" ({diff})" if owner else " (unreadable)")
            )
            raise RunFolderError(
                f"{out} holds {what}; choose another --out, or pass --overwrite to replace its "
                "run files"
            )
        if resume and same and owner and self.checkpoint_path.exists():
            done = int(load_checkpoint(self.checkpoint_path)["step"])
            if done > self.cfg.train.steps:
                raise RunFolderError(
                    f"{out} holds this run after {done} updates, more than the "
                    f"{self.cfg.train.steps} asked for; ask for {done} or more to go on, choose "
                    "another --out, or pass --no-resume to start again"
                )
        if not resume or not same:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            if owner is not None:
                shutil.rmtree(out / VIDEOS, ignore_errors=True)
        atomic_write_json(out / OWNER, {"method": self.cfg.method, "config": self.cfg.to_dict()})

    # ---------------------------------------------------------------------------- metrics
    def _truncate_metrics(self) -> None:
        """Drop metric rows logged after the checkpoint (they will be logged again)."""
        path = self.out_dir / METRICS
        if not path.exists():
            return
        with open(path, newline="", errors="replace") as f:
            rows = list(csv.reader(f))
        width = len(rows[0]) if rows else 0
        kept = (
            rows[:1]
            + [  # a row cut short by a kill mid-write is dropped with the later ones
                row
                for row in rows[1:]
                if len(row) == width and row[0].isdigit() and int(row[0]) <= self.step
            ]
        )
        with atomic_writer(path, "w") as f:
            csv.writer(f).writerows(kept)

    def flush_metrics(self) -> dict[str, float]:
        """Average the pending metrics with one host synchronisation, check them, append to CSV."""
        if not self.pending:
            return {}
        probe = self.probe(self.model) if self.probe else {}  # the value probe at these weights
        keys = list(self.pending[0]) + list(probe)
        shadowed = sorted(set(self.pending[0]) & set(probe))
        if shadowed:
            raise ValueError(f"agent metrics {shadowed} shadow the value probe's columns")
        means = torch.stack(
            [torch.stack([m[k] for m in self.pending]).mean() for k in self.pending[0]]
            + list(probe.values())
        )
        values = dict(zip(keys, means.tolist(), strict=True))
        self.pending.clear()
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            kept = (
                f"the last checkpoint (step {self.checkpoint_step}) is left intact"
                if self.checkpoint_step is not None
                else "no checkpoint had been written yet"
            )
            raise NonFiniteLossError(
                f"non-finite {bad} near step {self.step}; training stopped and {kept}"
            )
        bound = self.cfg.train.warn_above
        for key, value in values.items():
            if bound is not None and abs(value) > bound and key not in self._warned:
                self._warned.add(key)
                message = (
                    f"{key} reached {value:.3g} at step {self.step}, past train.warn_above "
                    f"({bound:g}): the values are exploding"
                )
                self.warnings.append(message)
                print(f"warning: {message}", file=sys.stderr)
        path = self.out_dir / METRICS
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", "elapsed_s", *keys])
            writer.writerow(
                [self.step, f"{self.elapsed:.2f}", *(f"{v:.6g}" for v in values.values())]
            )
        return values

    # ------------------------------------------------------------------------- evaluation
    def run_evaluation(self) -> dict[str, Any]:
        start = time.perf_counter()
        results = evaluate(
            self.model,
            self.domain,
            self.task_names,
            episodes=self.cfg.eval.episodes,
            seed=self.cfg.eval.seed,
            dataset=self.dataset,
            inference_samples=self.cfg.eval.inference_samples,
            goal_inference=self.cfg.eval.goal_inference,
        )
        scores = {name: r.score for name, r in results.items()}
        entry = {
            "step": self.step,
            "mean_score": sum(scores.values()) / len(scores),
            "scores": scores,
            "tasks": {name: r.to_dict() for name, r in results.items()},
            "eval_time_s": time.perf_counter() - start,
        }
        if all(entry["mean_score"] > e["mean_score"] for e in self.evaluations):
            self.save_best_model(entry["step"])
        self.evaluations.append(entry)
        return entry

    def save_best_model(self, step: int) -> None:
        """Keep the model's weights (not the optimisers') of the best evaluation so far."""
        state = {
            "step": step,
            "config": json.dumps(self.cfg.to_dict()),
            "model": self.model.state_dict(),
        }
        _save_atomically(state, self.out_dir / BEST_MODEL)

    def write_record(self, complete: bool, stopped: str | None = None) -> dict[str, Any]:
        """Write ``record.json`` (sealed with its checksum); ``stopped`` says why an incomplete run
        ended early."""
        summary = lambda e: {k: e[k] for k in ("step", "mean_score", "scores")}  # noqa: E731
        record = {
            "command": self.command,
            "method": self.cfg.method,
            "domain": self.cfg.domain,
            "scale": self.cfg.scale,
            "config": self.cfg.to_dict(),
            # single-task methods are trained for, and evaluated on, one task; the others zero-shot
            "single_task": self.cfg.single_task,
            "dataset": {
                k: self.dataset.meta.get(k) for k in ("name", "path", "sha256", "spec", "subsample")
            }
            | {"transitions": len(self.dataset), "action_filter": self.cfg.data.action_filter},
            "environment": environment_info(self.device),
            "wall_time_s": self.elapsed,
            "steps_done": self.step,
            "complete": complete,
            "tasks": self.task_names,
            "evaluations": self.evaluations,
            "last": summary(self.evaluations[-1]) if self.evaluations else None,
            "best": summary(max(self.evaluations, key=lambda e: e["mean_score"]))
            if self.evaluations
            else None,
            "warnings": self.warnings,
        }
        if stopped is not None:
            record["stopped"] = stopped
        record = seal(record)
        atomic_write_json(self.out_dir / RECORD, record)
        return record

    # ------------------------------------------------------------------------------- loop
    def run(self, resume: bool = True) -> dict[str, Any]:
        """Train to ``cfg.train.steps`` updates, evaluating and checkpointing on the way."""
        self._claim(resume)
        if not (resume and self.resume()):
            (self.out_dir / METRICS).unlink(missing_ok=True)  # rows of an attempt killed early
        try:
            return self._loop()
        except NonFiniteLossError as error:
            self.write_record(complete=False, stopped=str(error))
            raise

    def _loop(self) -> dict[str, Any]:
        t = self.cfg.train
        bar = tqdm(total=t.steps, initial=self.step, desc="train", disable=not self.progress)
        clock = time.perf_counter()

        def tick() -> None:
            nonlocal clock
            now = time.perf_counter()
            self.elapsed += now - clock
            clock = now

        def due(every: int) -> bool:
            return (every > 0 and self.step % every == 0) or self.step == t.steps

        if self.step == 0 and not self.evaluations:
            self.run_evaluation()
        while self.step < t.steps:
            self.pending.append(self.agent.update(self.sample_batch()))
            self.step += 1
            bar.update(1)
            if due(t.log_every) or due(t.eval_every) or due(t.checkpoint_every):
                tick()
                values = self.flush_metrics()  # raises on a non-finite loss, before any save
                bar.set_postfix({k: f"{values[k]:.3g}" for k in self.agent.progress_keys})
            if due(t.eval_every):
                entry = self.run_evaluation()
                tick()
                bar.write(f"step {self.step}: mean return {entry['mean_score']:.1f} {_fmt(entry)}")
                self.write_record(complete=False)
            if due(t.checkpoint_every) and self.step < t.steps:
                tick()
                self.save_checkpoint()
        bar.close()
        tick()
        self.save_checkpoint()
        return self.write_record(complete=True)


WEIGHTS = ("last", "best")


@dataclass
class LoadedRun:
    """A finished or stopped run's model with its last or best weights, and what evaluating it needs:
    no optimiser, no trainer."""

    cfg: RunConfig
    model: Any  # the method's model, in evaluation use
    domain: Any
    dataset: Dataset  # the run's training data (reward-labelled samples for task inference)
    task_names: list[str]
    probe: ValueProbe | None
    device: torch.device
    step: int
    evaluations: list[dict[str, Any]]


def load_run(
    run_dir: Path,
    which: str = "last",
    data_root: Path | None = None,
    dataset: Dataset | None = None,
) -> tuple[LoadedRun, int]:
    """A finished or stopped run with its last or its best weights, and their step.

    ``last`` is the model of the latest checkpoint; ``best`` the model's weights at the run's best
    evaluation (``best_model.pt``). The run's configuration is the one saved with the weights, so the
    result brings the run's dataset, domain and tasks with it, and its evaluations so far. Best weights
    that do not belong to the best evaluation of the run's record are a :class:`CheckpointError`.
    ``dataset``: the run's dataset where the caller has it already (another load of the same run),
    so that it is not prepared again.
    """
    if which not in WEIGHTS:
        raise ValueError(f"unknown weights {which!r}; valid: {list(WEIGHTS)}")
    run_dir = Path(run_dir)
    path = run_dir / (CHECKPOINT if which == "last" else BEST_MODEL)
    if not path.exists():
        kind = "checkpoint" if which == "last" else "best-evaluation weights"
        raise FileNotFoundError(f"no {kind} in {run_dir} (expected {path})")
    state = load_checkpoint(path)
    cfg = RunConfig.from_dict(json.loads(state["config"]))
    cfg.validate()
    device = resolve_device(cfg.train.device)
    domain = get_domain(cfg.domain)
    if dataset is None:
        dataset = prepare_dataset(cfg, data_root, progress=False)
    model = build_agent(cfg.method, cfg.agent, domain.obs_dim, domain.action_dim, device).model
    model.set_obs_stats(torch.as_tensor(dataset.observation, device=device))
    step = int(state["step"])
    record_path = run_dir / RECORD
    record = read_record(record_path) if record_path.exists() else None
    if which == "last":
        model.load_state_dict(state["agent"]["model"])
        evaluations = json.loads(state["evaluations"])
    else:
        model.load_state_dict(state["model"])
        evaluations = []
        if record is not None:
            if record["best"] is None or record["best"]["step"] != step:
                best_step = None if record["best"] is None else record["best"]["step"]
                raise CheckpointError(
                    f"{path} holds the weights of step {step}, but the best evaluation in "
                    f"{record_path} is at step {best_step}; evaluate the run again to refresh them"
                )
            evaluations = record["evaluations"]
    run = LoadedRun(
        cfg=cfg,
        model=model,
        domain=domain,
        dataset=dataset,
        task_names=cfg.eval.tasks or list(domain.tasks),
        probe=value_probe(cfg, dataset, device),
        device=device,
        step=step,
        evaluations=evaluations,
    )
    return run, step


def labelled_run(text: str) -> tuple[str, Path]:
    """A command-line ``LABEL=RUN_DIR`` as (label, run directory), for scripts that compare runs."""
    import argparse

    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"--run takes LABEL=RUN_DIR, got {text!r}")
    return label, Path(path)


def _fmt(entry: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.0f}" for k, v in entry["scores"].items())


# the checksum files of the run files (the dataset cache's convention), if any are there
_SIDECARS = tuple(f"{name}.sha256" for name in RUN_FILES)
