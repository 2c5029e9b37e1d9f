"""Fault injection: bad values and damaged files end in one clear line, never a traceback or silence.

Each case runs the command line as a user would and checks that it exits with status 2, prints one
line starting with ``error:`` that names the culprit, and leaves nothing behind. The module prints its
counts at the end (``pytest -s``): cases tried and errors that were clean.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from zsrl.cli import main
from zsrl.config import apply_overrides, preset
from zsrl.data.sources import prepare_dataset
from zsrl.train import CHECKPOINT, METRICS, NonFiniteLossError, Trainer, load_checkpoint

COUNTS = {"cases": 0, "clean errors": 0, "resumes": 0, "resumes exact": 0}

QUICK = ["train", "--scale", "quick", "--steps", "4", "--no-progress"]

# (--set value, words the error must hold)
BAD_SETTINGS = [
    ("agent.lr_actor=abc", "agent.lr_actor must be a number, got 'abc'"),
    ("agent.lr_actor=", "agent.lr_actor must be a number, got ''"),
    ("agent.lr_actor=-1e-4", "agent.lr_actor must be at least 0"),
    ("agent.batch_size=12.5", "agent.batch_size must be an integer, got 12.5"),
    ("agent.batch_size=-4", "agent.batch_size must be at least 1, got -4"),
    ("agent.batch_size=True", "agent.batch_size must be an integer, got True"),
    ("agent.discount=2.0", "agent.discount must be in [0, 1), got 2.0"),
    ("agent.z_mix_ratio=1.5", "agent.z_mix_ratio must be in [0, 1]"),
    ("agent.conservative=5", "agent.conservative is a section"),
    ("agent.conservative.lagrange=maybe", "agent.conservative.lagrange must be True or False"),
    ("agent.layernorm_input=1", "agent.layernorm_input must be True or False, got 1"),
    ("agent.target_heads=3", "agent.target_heads must be a string, got 3"),
    ("agent.target_heads=max", "unknown target_heads 'max'; valid choices"),
    ("agent.lr_actor=1e999", "agent.lr_actor must be finite"),
    ("train.eval_every=abc", "train.eval_every must be an integer, got 'abc'"),
    ("train.log_every=-1", "train.log_every must be at least 0, got -1"),
    ("train.checkpoint_every=-2", "train.checkpoint_every must be at least 0, got -2"),
    ("train.seed=-3", "train.seed must be at least 0"),
    ("train.threads=0", "train.threads must be at least 1"),
    ("eval.tasks=reach_top_left", "eval.tasks must be a list of strings or None"),
    ("eval.tasks=['reach_moon']", "unknown task 'reach_moon'"),
    ("eval.episodes=0", "eval.episodes must be at least 1"),
    ("data.n_transitions=0", "data.n_transitions must be at least 1"),
    ("data.action_filter=no_diagonal", "unknown action filter 'no_diagonal'"),
    ("agent.lr_actr=1e-4", "unknown config key 'agent.lr_actr'"),
    ("agnt.lr_actor=1e-4", "unknown config section 'agnt.lr_actor'"),
    ("agent.lr_actor", "is not of the form section.key=value"),
    ("eval.tasks=['reach_top_left','reach_top_left']", "tasks ['reach_top_left'] are named more"),
    ("data.path='x.hdf5'", "data.path 'x.hdf5' is read by a file data source only"),
    ("method=vcfb", "sets the run's method, which chooses its preset: give it as --method"),
    ("scale=paper", "sets the run's scale"),
]


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def assert_clean_error(code: int, err: str, words: str) -> None:
    COUNTS["cases"] += 1
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert words in lines[0], err
    COUNTS["clean errors"] += 1


@pytest.mark.parametrize(("setting", "words"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_before_any_file_is_written(setting, words, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_main([*QUICK, "--out", str(out), "--set", setting], capsys)
    assert_clean_error(code, err, words)
    assert not out.exists()


def bad_values(name: str, value: object) -> list[str]:
    """Values of the wrong type for a field holding ``value`` (its preset's)."""
    if isinstance(value, bool):
        return ["maybe", "2"]
    if isinstance(value, int):
        return ["abc", "1.5", "''"]
    if isinstance(value, float):
        return ["abc", "''", "[1]"]
    if isinstance(value, str):
        return ["3", "[1]"]
    if isinstance(value, list) or name == "eval.tasks":
        return ["abc", "3"]
    return ["[[1]]"]  # None-valued optional fields: a list of lists is nothing they take


def every_field() -> list[tuple[str, str]]:
    from zsrl.config import _flat

    config = preset("vcfb", "point_mass_maze", "quick").to_dict()
    fields = {
        k: v
        for s in ("agent", "data", "train", "eval")
        for k, v in _flat(config[s], f"{s}.").items()
    }
    return [(name, bad) for name, value in fields.items() for bad in bad_values(name, value)]


@pytest.mark.parametrize(("field", "bad"), every_field())
def test_every_field_refuses_a_value_of_the_wrong_type(field, bad, capsys):
    code, err = run_main(["config", "--method", "vcfb", "--set", f"{field}={bad}"], capsys)
    assert_clean_error(code, err, field)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--steps", "0"], "steps must be at least 1, got 0"),
        (["--n-transitions", "-5"], "n_transitions must be at least 1, got -5"),
        (["--threads", "0"], "threads must be at least 1, got 0"),
        (["--seed", "-1"], "seed must be at least 0, got -1"),
        (["--method", "fbb"], "unknown method 'fbb'; valid choices"),
        (["--dataset", "d4rl"], "unknown dataset 'd4rl'; valid choices"),
        (["--dataset", "medium"], "dataset 'medium' needs one task that is its objective"),
        (["--domain", "cheetah"], "unknown domain 'cheetah'; valid choices"),
        (["--action-filter", "no_diagonal"], "unknown action filter 'no_diagonal'"),
        (["--tasks", "reach_moon"], "unknown task 'reach_moon'"),
    ],
)
def test_a_bad_flag_is_one_line_before_any_file_is_written(flags, words, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_main([*QUICK, "--out", str(out), *flags], capsys)
    assert_clean_error(code, err, words)
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["collect", "--episodes", "-5"], "--episodes must be at least 1, got -5"),
        (["collect", "--dataset", "rnd", "--scale", "huge"], "unknown scale 'huge' for dataset"),
        (["collect", "--dataset", "d4rl"], "unknown dataset 'd4rl'; valid datasets"),
        (["sweep", "missing_grid.toml"], "missing_grid.toml"),
        (["summarize", "no_such_run"], "no result record at no_such_run"),
        ([*QUICK, "--device", "cuda"], "device 'cuda' is not available here"),
        ([*QUICK, "--device", "tpu9"], "unknown device 'tpu9'"),
    ],
)
def test_other_commands_fail_in_one_line(argv, words, tmp_path, capsys, monkeypatch):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a GPU is present here")
    monkeypatch.chdir(tmp_path)
    code, err = run_main(
        [*argv, "--data-dir", str(tmp_path / "d")]
        if argv[0] == "collect" or argv[0] == "train"
        else argv,
        capsys,
    )
    assert_clean_error(code, err, words)
    assert not (tmp_path / "runs").exists()


def test_eval_with_a_bad_episode_count_is_one_line(finished, capsys):
    out, _ = finished
    code, err = run_main(["eval", str(out), "--episodes", "-1"], capsys)
    assert_clean_error(code, err, "--episodes must be at least 1, got -1")


# ------------------------------------------------------------------------------- damaged files
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def finished(tmp_path, data_dir, capsys):
    """A finished quick run: its folder and the flags that make it."""
    out = tmp_path / "run"
    flags = [*QUICK, "--data-dir", str(data_dir), "--out", str(out), "--set", "train.eval_every=2"]
    assert main(flags) == 0
    capsys.readouterr()
    return out, flags


def flip(path: Path, offset: int = 200, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, min(offset + n, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.mark.parametrize("damage", [flip, truncate], ids=["flipped", "truncated"])
def test_a_damaged_checkpoint_is_named_not_loaded(finished, damage, capsys):
    out, flags = finished
    damage(out / CHECKPOINT)
    code, err = run_main([*flags[:4], "6", *flags[5:]], capsys)  # resume it for 6 steps
    assert_clean_error(code, err, f"checkpoint {out / CHECKPOINT}")
    code, err = run_main(
        ["eval", str(out), "--data-dir", flags[flags.index("--data-dir") + 1]], capsys
    )
    assert_clean_error(code, err, f"checkpoint {out / CHECKPOINT}")


@pytest.mark.parametrize("damage", [flip, truncate], ids=["flipped", "truncated"])
def test_damaged_best_weights_are_named(finished, damage, capsys):
    out, flags = finished
    damage(out / "best_model.pt")
    data = flags[flags.index("--data-dir") + 1]
    code, err = run_main(["eval", str(out), "--weights", "best", "--data-dir", data], capsys)
    assert_clean_error(code, err, str(out / "best_model.pt"))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "does not match its checksum"),  # one number changed: still JSON, not the record
        ("{not json", "is not a result record: not JSON"),
        ('{"method": "fb"}', "is not a result record: it lacks"),
        ("[1, 2, 3]", "is not a result record: it holds a list"),
    ],
    ids=["edited", "not-json", "wrong-keys", "wrong-type"],
)
def test_a_damaged_record_is_named(finished, content, words, capsys):
    out, _ = finished
    record = out / "record.json"
    if content is None:
        data = json.loads(record.read_text())
        data["last"]["mean_score"] += 100.0
        record.write_text(json.dumps(data))
    else:
        record.write_text(content)
    code, err = run_main(["summarize", str(out)], capsys)
    assert_clean_error(code, err, words)


def test_a_damaged_dataset_or_checksum_file_is_named(finished, data_dir, capsys):
    out, flags = finished
    (dataset,) = sorted(data_dir.glob("*uniform-reset*.npz"))
    sidecar = dataset.with_name(dataset.name + ".sha256")
    good = sidecar.read_text()
    sidecar.write_text("")
    code, err = run_main([*flags[:-2], "--out", str(out.parent / "b")], capsys)
    assert_clean_error(code, err, "is empty or malformed")
    sidecar.write_text(good)
    flip(dataset, offset=5000)
    code, err = run_main([*flags[:-2], "--out", str(out.parent / "c")], capsys)
    assert_clean_error(code, err, "does not match its checksum")
    dataset.unlink()  # the next test collects it again
    sidecar.unlink()


def test_a_truncated_metrics_file_resumes_with_every_step_once(finished, capsys):
    out, flags = finished
    metrics = out / METRICS
    text = metrics.read_text()
    metrics.write_text(text[: len(text) - 7])  # a row cut short by a kill mid-write
    assert main([*flags[:4], "8", *flags[5:]]) == 0
    steps = [int(row.split(",")[0]) for row in metrics.read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 8


def test_a_checkpoint_replaced_by_another_runs_is_refused(finished, tmp_path, capsys):
    out, flags = finished
    other = tmp_path / "other"
    assert main([*flags[:-4], "--out", str(other), "--set", "agent.lr_fb=0.5"]) == 0
    (out / CHECKPOINT).write_bytes((other / CHECKPOINT).read_bytes())  # well formed, not this run's
    capsys.readouterr()
    code, err = run_main([*flags[:4], "6", *flags[5:]], capsys)
    assert_clean_error(code, err, "was made with a different configuration (agent.lr_fb")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('scale = "quick"\n[[block]]\nmethod = "fb"\ndataset = ', "is not valid TOML"),
        ('scale = "quick"\n[[block]]\nmethod = "fb"\ndataset = "random"\nseed = "x"\n', "seed"),
        (
            'scale = "quick"\n[[block]]\nmethod = "fb"\ndataset = "random"\nseed = 0\nsteps = -3\n',
            "steps must be at least 1",
        ),
        ("\x00\xff\xfe", "grid"),
    ],
    ids=["truncated", "bad-seed", "bad-steps", "binary"],
)
def test_a_damaged_grid_file_is_one_line(text, words, tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_bytes(text.encode("latin-1"))
    code, err = run_main(["sweep", str(grid), "--status"], capsys)
    assert_clean_error(code, err, words)


# ----------------------------------------------------------------------------- the run folder
def test_out_naming_a_file_is_one_line(tmp_path, data_dir, capsys):
    path = tmp_path / "a_file"
    path.write_text("mine")
    code, err = run_main([*QUICK, "--data-dir", str(data_dir), "--out", str(path)], capsys)
    assert_clean_error(code, err, "is a file, not a folder")
    assert path.read_text() == "mine"


def test_a_folder_with_the_users_files_is_refused_and_kept(tmp_path, data_dir, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    flags = [*QUICK, "--data-dir", str(data_dir), "--out", str(out)]
    code, err = run_main(flags, capsys)
    assert_clean_error(code, err, "files zsrl did not write ['notes.txt']")
    assert main([*flags, "--overwrite"]) == 0  # said explicitly: trains beside them
    assert (out / "notes.txt").read_text() == "my notes" and (out / CHECKPOINT).exists()


@pytest.mark.parametrize("no_resume", [False, True], ids=["resume", "no-resume"])
def test_another_methods_run_is_never_appended_to_nor_deleted(finished, no_resume, capsys):
    out, flags = finished
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    other = [*flags, "--method", "gciql"] + (["--no-resume"] if no_resume else [])
    code, err = run_main(other, capsys)
    assert_clean_error(code, err, "holds another run")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_finished_run_asked_for_fewer_updates_is_refused_and_kept(finished, capsys):
    """Its record, owner file and weights stay those of its 4 updates; more would extend it."""
    out, flags = finished
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = run_main([*flags, "--steps", "2"], capsys)
    assert_clean_error(code, err, "holds this run after 4 updates, more than the 2 asked for")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_unreadable_run_files_are_refused_then_replaced_with_overwrite(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"method": "fb"}')  # no configuration in it
    flags = [*QUICK, "--data-dir", str(data_dir), "--out", str(out)]
    code, err = run_main(flags, capsys)
    assert_clean_error(code, err, "holds run files zsrl cannot read")
    assert main([*flags, "--overwrite"]) == 0  # said explicitly: replaced
    assert json.loads((out / "run.json").read_text())["config"]["train"]["steps"] == 4


def test_a_run_killed_before_its_first_checkpoint_logs_each_step_once(tmp_path, data_dir):
    cfg = apply_overrides(
        preset("fb", "point_mass_maze", "quick"),
        ["train.steps=20", "train.log_every=1", "train.checkpoint_every=10", "train.eval_every=0"],
    )
    trainer = Trainer(cfg, tmp_path, data_root=data_dir, progress=False)
    trainer.save_checkpoint = lambda: (_ for _ in ()).throw(KeyboardInterrupt)  # killed here
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert not (tmp_path / CHECKPOINT).exists() and (tmp_path / METRICS).exists()
    (tmp_path / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half a file")  # a write cut short
    Trainer(cfg, tmp_path, data_root=data_dir, progress=False).run()
    steps = [int(r.split(",")[0]) for r in (tmp_path / METRICS).read_text().splitlines()[1:]]
    COUNTS["resumes"] += 1
    assert steps == list(range(1, 21))
    assert not list(tmp_path.glob(".*.tmp"))
    COUNTS["resumes exact"] += 1


# ------------------------------------------------------------------ non-finite and huge values
def test_the_nan_guard_says_what_it_kept_and_writes_a_record(tmp_path, data_dir):
    cfg = apply_overrides(
        preset("fb", "point_mass_maze", "quick"), ["train.steps=20", "train.log_every=5"]
    )
    trainer = Trainer(cfg, tmp_path, data_root=data_dir, progress=False)
    update = trainer.agent.update
    trainer.agent.update = lambda batch: {**update(batch), "fb_loss": torch.tensor(float("nan"))}
    with pytest.raises(NonFiniteLossError, match="no checkpoint had been written yet"):
        trainer.run()
    record = json.loads((tmp_path / "record.json").read_text())
    assert not record["complete"] and "non-finite ['fb_loss']" in record["stopped"]


def test_exploding_values_warn_and_are_recorded(tmp_path, data_dir, capsys):
    cfg = apply_overrides(
        preset("fb", "point_mass_maze", "quick"), ["train.steps=10", "train.warn_above=1e-9"]
    )
    record = Trainer(cfg, tmp_path, data_root=data_dir, progress=False).run()
    assert record["complete"] and record["warnings"]
    assert "past train.warn_above (1e-09): the values are exploding" in capsys.readouterr().err
    assert len({w.split(" reached")[0] for w in record["warnings"]}) == len(record["warnings"])


# ----------------------------------------------------------------------- datasets and scales
def test_rnd_at_quick_scale_is_the_quick_exploration_and_files_are_group_readable(tmp_path):
    cfg = apply_overrides(preset("fb", "point_mass_maze", "quick"), ["data.name='rnd'"])
    start = time.perf_counter()
    dataset = prepare_dataset(cfg, tmp_path, progress=False)
    assert time.perf_counter() - start < 120 and len(dataset) == 4_000  # seconds, not minutes
    assert "rnd-quick-" in dataset.meta["name"]
    stale = tmp_path / f".{dataset.meta['name']}.npz.k1ll.tmp"  # a write cut short by a kill
    stale.write_bytes(b"half")
    prepare_dataset(cfg, tmp_path, progress=False)
    assert not stale.exists()
    umask = os.umask(0)
    os.umask(umask)
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


# ------------------------------------------------------------------------ kill -9, then resume
def weights(run: Path) -> torch.Tensor:
    model = load_checkpoint(run / CHECKPOINT)["agent"]["model"]
    return torch.cat([v.flatten().float() for v in model.values()])


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_run(tmp_path, data_dir):
    """Killed three times at random moments (training, evaluating, checkpointing), then resumed:
    the same weights and each metrics step once. Slow: real processes."""
    flags = [sys.executable, "-m", "zsrl", *QUICK[:3], "--steps", "300", "--no-progress"]
    flags += ["--data-dir", str(data_dir), "--set", "train.checkpoint_every=25", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*flags, "--out", str(tmp_path / "straight")], check=True, env=env)
    rng = np.random.default_rng(0)
    resumes = 0
    for delay in rng.uniform(3.0, 8.0, size=3):
        proc = subprocess.Popen([*flags, "--out", str(tmp_path / "killed")], env=env)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            resumes += 1
        proc.wait()
    subprocess.run([*flags, "--out", str(tmp_path / "killed")], check=True, env=env)
    COUNTS["resumes"] += 1
    assert torch.equal(weights(tmp_path / "killed"), weights(tmp_path / "straight"))
    rows = (tmp_path / "killed" / METRICS).read_text().splitlines()[1:]
    steps = [int(r.split(",")[0]) for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 300
    COUNTS["resumes exact"] += 1
    print(f"\nkill -9: {resumes} kills, resumed to the uninterrupted weights")


@pytest.mark.slow
def test_kill_9_during_a_collection_then_resume_gives_the_same_bytes(tmp_path):
    """The resumable RND collection killed mid-way, then run again: the same file as a collection
    never interrupted (quick scale, 12 episodes: three waves, a checkpoint after each)."""
    argv = [sys.executable, "-m", "zsrl", "collect", "--dataset", "rnd", "--scale", "quick"]
    argv += ["--episodes", "12"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*argv, "--data-dir", str(tmp_path / "straight")], check=True, env=env)
    proc = subprocess.Popen([*argv, "--data-dir", str(tmp_path / "killed")], env=env)
    time.sleep(float(np.random.default_rng(1).uniform(6.0, 10.0)))
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run([*argv, "--data-dir", str(tmp_path / "killed")], check=True, env=env)
    (straight,) = (tmp_path / "straight").glob("*.npz")
    (resumed,) = (tmp_path / "killed").glob("*.npz")
    COUNTS["resumes"] += 1
    assert straight.read_bytes() == resumed.read_bytes()
    COUNTS["resumes exact"] += 1
    assert not list((tmp_path / "killed").glob("*.partial.pt"))
    print(f"\nkill -9 during collection: {'killed' if killed else 'finished first'}, same bytes")


def test_zz_print_the_counts():
    """Runs last in this module: the counts of the cases above (shown with ``pytest -s``)."""
    print(
        f"\nfault injection: {COUNTS['cases']} bad inputs, {COUNTS['clean errors']} clean one-line "
        f"errors; {COUNTS['resumes']} interrupted runs, {COUNTS['resumes exact']} resumed exactly"
    )
    assert COUNTS["cases"] == COUNTS["clean errors"]
    assert COUNTS["resumes"] == COUNTS["resumes exact"]
