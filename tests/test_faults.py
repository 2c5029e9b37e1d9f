"""Fault injection: bad values and damaged files end in one clear line, never a traceback or silence.

Each case runs the command line as a user would and checks that it exits with status 2, prints one
line starting with ``error:`` that names the culprit, and leaves nothing behind. The module prints its
counts at the end (``pytest -s``): cases tried and errors that were clean.
"""

from __future__ import annotations

import pytest

from zsrl.cli import main

COUNTS = {"cases": 0, "clean errors": 0}

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


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--steps", "0"], "steps must be at least 1, got 0"),
        (["--n-transitions", "-5"], "n_transitions must be at least 1, got -5"),
        (["--threads", "0"], "threads must be at least 1, got 0"),
        (["--seed", "-1"], "seed must be at least 0, got -1"),
        (["--method", "fbb"], "unknown method 'fbb'; valid choices"),
        (["--dataset", "d4rl"], "unknown dataset 'd4rl'; valid choices"),
        (["--domain", "walker"], "unknown domain 'walker'; valid choices"),
        (["--action-filter", "no_diagonal"], "unknown action filter 'no_diagonal'"),
        (["--tasks", "reach_moon"], "unknown task 'reach_moon'"),
    ],
)
def test_a_bad_flag_is_one_line_before_any_file_is_written(flags, words, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_main([*QUICK, "--out", str(out), *flags], capsys)
    assert_clean_error(code, err, words)
    assert not out.exists()


def test_zz_print_the_counts():
    """Runs last in this module: the counts of the cases above (shown with ``pytest -s``)."""
    print(f"\nfault injection: {COUNTS['cases']} cases, {COUNTS['clean errors']} clean errors")
    assert COUNTS["cases"] == COUNTS["clean errors"]
