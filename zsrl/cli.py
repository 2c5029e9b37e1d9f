"""Command line: ``python -m zsrl collect|train|config|eval|video|sweep|summarize``.

Every choice (method, domain, task, dataset, scale, filter) is checked against its registry, and a bad
value is an error that names it and lists the valid ones.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from zsrl.config import RUN_OPTIONS, RunConfig, duration_note, resolve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zsrl", description="Zero-shot RL from low-quality data: FB and friends."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    collect = sub.add_parser("collect", help="collect (or regenerate) a named dataset")
    options = {o.name: o for o in RUN_OPTIONS}
    collect.add_argument(
        "--domain",
        default="point_mass_maze",
        help=f"one of {options['domain'].choices()} (default: point_mass_maze)",
    )
    collect.add_argument(
        "--dataset",
        default=None,
        help=f"one of {options['dataset'].choices()} (default: the domain's: uniform-reset on the "
        "maze, random elsewhere)",
    )
    collect.add_argument("--episodes", type=int, default=None, help="default: the collector's")
    collect.add_argument("--seed", type=int, default=0, help="(default: 0)")
    collect.add_argument(
        "--scale",
        default=None,
        help="hyperparameter set of collectors that have them (rnd, rnd-short, diayn, medium, "
        "medium-replay, medium-expert: book, quick); default: book",
    )
    collect.add_argument("--data-dir", type=Path, default=None, help="default: $ZSRL_DATA_DIR")
    collect.add_argument("--regenerate", action="store_true", help="collect even if cached")

    train = sub.add_parser("train", help="train a method offline and evaluate it zero-shot")
    _add_run_options(train)
    train.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run directory (default: runs/METHOD_DOMAIN_DATASET[_OPTIONS]_SCALE_seedSEED)",
    )
    train.add_argument("--data-dir", type=Path, default=None)
    train.add_argument(
        "--no-resume", action="store_true", help="start afresh in --out (a run of the same config)"
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="train into an --out that holds another run or files zsrl did not write, replacing "
        "its run files",
    )
    train.add_argument("--no-progress", action="store_true")

    config = sub.add_parser(
        "config", help="print a resolved configuration and where each preset value comes from"
    )
    _add_run_options(config)

    ev = sub.add_parser("eval", help="evaluate a run's checkpoint zero-shot on every task")
    ev.add_argument("run", type=Path, help="run directory (holds checkpoint.pt)")
    ev.add_argument("--episodes", type=int, default=None)
    ev.add_argument("--tasks", nargs="+", default=None)
    ev.add_argument("--seed", type=int, default=None, help="evaluation seed")
    ev.add_argument("--goal-inference", default=None, help="goal or rewards")
    ev.add_argument("--data-dir", type=Path, default=None)
    ev.add_argument(
        "--weights",
        default="last",
        choices=["last", "best"],
        help="the latest checkpoint or the weights of the best evaluation",
    )

    video = sub.add_parser(
        "video",
        help="render a run's rollouts of one task to a video (MP4 or GIF)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    video.add_argument("run", type=Path, help="run directory (holds checkpoint.pt)")
    video.add_argument("--task", required=True, help="the task whose rollouts to render")
    video.add_argument(
        "--out",
        type=Path,
        default=None,
        help="video file, .mp4 or .gif (default: RUN/videos/TASK_WEIGHTS.mp4)",
    )
    video.add_argument(
        "--episodes", type=int, default=1, help="evaluation episodes, one after the other"
    )
    video.add_argument(
        "--weights",
        default="last",
        choices=["last", "best"],
        help="the latest checkpoint or the weights of the best evaluation",
    )
    video.add_argument(
        "--seed", type=int, default=None, help="evaluation seed (default: the run's)"
    )
    video.add_argument("--width", type=int, default=320, help="frame width in pixels")
    video.add_argument("--height", type=int, default=240, help="frame height in pixels")
    video.add_argument(
        "--camera", default=None, help="a camera of the domain's model (default: its first)"
    )
    video.add_argument(
        "--fps", type=float, default=None, help="frames per second (default: real time)"
    )
    video.add_argument("--every", type=int, default=1, help="render one state in this many")
    video.add_argument(
        "--no-shadows", action="store_true", help="draw no shadows (much faster without a GPU)"
    )
    video.add_argument("--data-dir", type=Path, default=None, help="default: $ZSRL_DATA_DIR")

    sw = sub.add_parser(
        "sweep",
        help="run every cell of a grid file (skips finished cells, resumes interrupted ones)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sw.add_argument("grid", type=Path, help="grid file (TOML): see zsrl/sweep.py or results/grids/")
    sw.add_argument("--backend", default="local", choices=["local", "ray"])
    sw.add_argument("--workers", type=int, default=2, help="local processes, one torch thread each")
    sw.add_argument(
        "--address", default=None, help="ray: a cluster's address (e.g. auto); none starts Ray here"
    )
    sw.add_argument("--out-root", type=Path, default=None, help="default: runs/<grid file name>")
    sw.add_argument("--results", type=Path, default=None, help="copy records and metrics here")
    sw.add_argument("--data-dir", type=Path, default=None, help="default: $ZSRL_DATA_DIR")
    sw.add_argument(
        "--status", action="store_true", help="list the cells and their state; run none"
    )
    sw.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="PATTERN",
        help="run only the cells whose names match these shell patterns (e.g. 'fb_*'), so that "
        "two sweeps can share a grid; default: every cell",
    )
    sw.add_argument(
        "--first",
        nargs="+",
        default=None,
        metavar="PATTERN",
        help="start the cells matching these shell patterns (e.g. '*_seed0') before the others, "
        "then go on with the rest in the same pool; default: the grid's order",
    )
    sw.add_argument("--no-progress", action="store_true")

    summary = sub.add_parser("summarize", help="IQM with a 95%% interval over runs (seeds)")
    summary.add_argument("runs", type=Path, nargs="+", help="run directories or record files")
    summary.add_argument("--out", type=Path, default=None, help="write the summary JSON here")
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The flags of :data:`zsrl.config.RUN_OPTIONS`, and ``--set``."""
    for option in RUN_OPTIONS:
        text = option.help + (f"; one of {option.choices()}" if option.choices else "")
        text += "" if option.default is None else f" (default: {option.default})"
        parser.add_argument(
            "--" + option.name.replace("_", "-"),
            type=option.kind,
            nargs="+" if option.many else None,
            default=option.default,
            help=text,
        )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides, e.g. agent.lr_actor=3e-5 train.eval_every=1000",
    )


def build_config(args: argparse.Namespace) -> RunConfig:
    options = {o.name: getattr(args, o.name) for o in RUN_OPTIONS if o.field is not None}
    return resolve(args.method, args.domain, args.scale, overrides=args.set, **options)


def default_out(cfg: RunConfig) -> Path:
    extra = f"_n{cfg.data.n_transitions}" if cfg.data.n_transitions else ""
    extra += f"_{cfg.data.action_filter}" if cfg.data.action_filter else ""
    extra += f"_{cfg.single_task}" if cfg.single_task else ""
    data = cfg.data.name
    if cfg.data.source != "collect":  # a file source: named after the file or directory it reads
        data = f"{cfg.data.source}-{Path(cfg.data.path or '').name or 'data'}"
    return Path("runs") / (
        f"{cfg.method}_{cfg.domain}_{data}{extra}_{cfg.scale}_seed{cfg.train.seed}"
    )


def _at_least(name: str, value: int | None, low: int = 1) -> None:
    if value is not None and value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")


def cmd_collect(args: argparse.Namespace) -> None:
    from zsrl.data import default_spec, load_or_collect

    _at_least("--episodes", args.episodes)
    _at_least("--seed", args.seed, 0)
    from zsrl.envs import get_domain

    name = args.dataset or get_domain(args.domain).default_dataset
    spec = default_spec(args.domain, name, args.episodes, args.seed, args.scale)
    dataset = load_or_collect(spec, root=args.data_dir, regenerate=args.regenerate)
    print(f"{spec.name}: {len(dataset)} transitions in {dataset.meta['path']}")
    print(f"sha256 {dataset.meta['sha256']}")


def cmd_train(args: argparse.Namespace) -> None:
    from zsrl.data.sources import prepare_dataset
    from zsrl.train import Trainer

    cfg = build_config(args)
    out = args.out or default_out(cfg)
    command = "python -m zsrl " + shlex.join(sys.argv[1:])
    note = duration_note(cfg)
    if note:
        print(f"note: {note}", file=sys.stderr)
    dataset = prepare_dataset(cfg, args.data_dir, progress=not args.no_progress)
    trainer = Trainer(
        cfg,
        out,
        command=command,
        data_root=args.data_dir,
        progress=not args.no_progress,
        dataset=dataset,
        overwrite=args.overwrite,
    )
    record = trainer.run(resume=not args.no_resume)
    _print_summary(record, out)


def cmd_config(args: argparse.Namespace) -> None:
    from zsrl.config import format_config

    print(format_config(build_config(args)), end="")


def cmd_eval(args: argparse.Namespace) -> None:
    from zsrl.evaluate import evaluate
    from zsrl.train import load_run

    _at_least("--episodes", args.episodes)
    _at_least("--seed", args.seed, 0)
    run, step = load_run(args.run, args.weights, data_root=args.data_dir)
    cfg = run.cfg
    results = evaluate(
        run.model,
        run.domain,
        args.tasks or run.task_names,
        episodes=args.episodes or cfg.eval.episodes,
        seed=cfg.eval.seed if args.seed is None else args.seed,
        dataset=run.dataset,
        inference_samples=cfg.eval.inference_samples,
        goal_inference=args.goal_inference or cfg.eval.goal_inference,
    )
    print(f"{args.run}, {args.weights} weights (step {step}):")
    for name, r in results.items():
        dist = (
            ""
            if r.final_distance is None
            else f"  final distance {sum(r.final_distance) / len(r.final_distance):.3f}"
        )
        d4rl = "" if r.normalized_score is None else f"  D4RL score {r.normalized_score:5.1f}"
        print(f"  {name:24s} IQM return {r.score:7.1f}{dist}{d4rl}")
    if run.probe is None:
        return
    probe = {k: float(v) for k, v in run.probe(run.model).items()}
    print("  value probe (mean predicted Q over dataset states, and sphere z for FB and SF-LAP):")
    print("    " + "  ".join(f"{k} {v:.4g}" for k, v in probe.items()))


def cmd_video(args: argparse.Namespace) -> None:
    from zsrl.train import VIDEOS, load_run
    from zsrl.video import FORMATS, check_video_options, record_video

    for name in ("--episodes", "--width", "--height", "--every"):
        _at_least(name, getattr(args, name[2:]))
    _at_least("--seed", args.seed, 0)
    check_video_options(args.width, args.height, args.fps)
    if args.out is not None and args.out.suffix.lower() not in FORMATS:
        raise ValueError(f"--out {args.out} is not a video file; valid suffixes: {list(FORMATS)}")
    if not args.run.is_dir():
        raise FileNotFoundError(f"no run directory {args.run}")
    run, step = load_run(args.run, args.weights, data_root=args.data_dir)
    out = args.out or args.run / VIDEOS / f"{args.task}_{args.weights}.mp4"
    camera = int(args.camera) if args.camera and args.camera.lstrip("-").isdigit() else args.camera
    result = record_video(
        run,
        args.task,
        out,
        episodes=args.episodes,
        seed=args.seed,
        width=args.width,
        height=args.height,
        camera=camera,
        fps=args.fps,
        every=args.every,
        shadows=not args.no_shadows,
    )
    returns = " ".join(f"{r:.1f}" for r in result.returns)
    distances = (
        "" if result.final_distance is None else " ".join(f"{d:.3f}" for d in result.final_distance)
    )
    print(f"{out}: {args.task}, {args.weights} weights (step {step})")
    print(f"  returns {returns}" + (f", final distances {distances}" if distances else ""))


def cmd_sweep(args: argparse.Namespace) -> int:
    from zsrl.sweep import check_sweep_options, grid_status, load_grid, sweep

    out_root = args.out_root or Path("runs") / args.grid.stem
    # before the grid's status is printed
    check_sweep_options(args.backend, args.workers, out_root, args.results)
    grid = load_grid(args.grid)
    grid.select(args.only)  # a pattern that matches no cell: the error, before anything runs
    if args.first is not None:
        grid.select(args.first)
    status = grid_status(grid, out_root)
    print(
        f"{args.grid}: {len(grid)} cells in {out_root}: {len(status.done)} done, "
        f"{len(status.partial)} to resume, {len(status.todo)} to start"
    )
    hours = status.hours_left(grid)
    if hours is not None and (status.partial or status.todo):
        workers = 1 if args.backend == "ray" else args.workers  # a cluster's size is its own
        print(
            f"  time left: about {hours:.0f} cell-hours at the wall times of the "
            f"{len(status.wall_hours)} finished cells"
            + (f", {hours / workers:.0f} h on {workers} workers" if workers > 1 else "")
        )
    if args.status:
        for state in ("done", "partial", "todo"):
            for name in getattr(status, state):
                print(f"  {state:8s} {name}")
        return 0
    results = sweep(
        grid,
        out_root,
        backend=args.backend,
        workers=args.workers,
        address=args.address,
        data_root=args.data_dir,
        results=args.results,
        progress=not args.no_progress,
        only=args.only,
        first=args.first,
    )
    for r in (r for r in results if r.status != "not selected"):
        print(f"  {r.line()}")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"error: {len(failed)} of {len(results)} cells failed", file=sys.stderr)
        return 1
    return 0


def cmd_summarize(args: argparse.Namespace) -> None:
    from zsrl.results import format_summary, load_records, summarize, write_summary

    summary = write_summary(args.runs, args.out) if args.out else summarize(load_records(args.runs))
    print(format_summary(summary))


def _print_summary(record: dict, out: Path) -> None:
    last, best = record["last"], record["best"]
    print(
        f"\nrun directory: {out}  ({record['wall_time_s']:.0f} s, {record['steps_done']} updates)"
    )
    kind = "return" if record.get("single_task") else "zero-shot return"
    print(f"{'task':24s} {'last':>8s} {'best':>8s}   ({kind}, IQM over episodes)")
    for task in record["tasks"]:
        print(f"{task:24s} {last['scores'][task]:8.1f} {best['scores'][task]:8.1f}")
    print(
        f"{'mean':24s} {last['mean_score']:8.1f} {best['mean_score']:8.1f}"
        f"   (best at step {best['step']})"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from zsrl.data import DatasetError
    from zsrl.train import CheckpointError, NonFiniteLossError

    try:
        commands = {
            "collect": cmd_collect,
            "config": cmd_config,
            "train": cmd_train,
            "eval": cmd_eval,
            "video": cmd_video,
            "summarize": cmd_summarize,
            "sweep": cmd_sweep,
        }
        code = commands[args.command](args)
    except (
        ValueError,
        FileNotFoundError,
        DatasetError,
        CheckpointError,
        NonFiniteLossError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return code or 0
