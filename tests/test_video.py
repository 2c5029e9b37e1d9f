"""Videos of rollouts: frames against dm_control's own renders of the same states, MP4 and GIF files
read back with imageio, and ``python -m zsrl video`` on a tiny trained run."""

from __future__ import annotations

import json

import imageio.v3 as iio
import mujoco
import numpy as np
import pytest

from zsrl.cli import main
from zsrl.envs import get_domain
from zsrl.envs.registry import PHYSICS_STATE
from zsrl.train import load_run
from zsrl.video import camera_id, control_timestep, render, rollout, write_video

WIDTH, HEIGHT = 64, 48
TASK = {"point_mass_maze": "reach_top_left", "walker": "stand"}


def some_states(domain_name: str, n: int = 4) -> np.ndarray:
    """n different physics states (n x P): the maze's anywhere in free space, the walker's starts."""
    domain = get_domain(domain_name)
    sampler = domain.samplers.get("free", domain.sample_start)
    return sampler(np.random.default_rng(0), n)


def dm_control_frames(domain_name: str, states: np.ndarray, camera: int) -> np.ndarray:
    """The same states rendered by the domain's dm_control environment (``Physics.render``)."""
    physics = get_domain(domain_name).load(TASK[domain_name], seed=0).physics
    frames = []
    for state in states:
        mujoco.mj_setState(physics.model.ptr, physics.data.ptr, state, PHYSICS_STATE)
        physics.forward()
        frames.append(physics.render(HEIGHT, WIDTH, camera_id=camera))
    return np.stack(frames)  # n x H x W x 3


@pytest.mark.parametrize("domain_name", ["point_mass_maze", "walker"])
def test_frames_are_dm_controls_renders_of_the_same_states(domain_name):
    states = some_states(domain_name)
    frames = render(get_domain(domain_name), states, WIDTH, HEIGHT)
    assert frames.shape == (len(states), HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    assert any((frame != frames[0]).any() for frame in frames[1:])  # the states differ
    np.testing.assert_array_equal(frames, dm_control_frames(domain_name, states, camera=0))


def test_cameras_by_name_and_id_and_a_clear_error_for_others():
    walker = get_domain("walker")
    model = walker.model()
    assert camera_id(model) == 0 and camera_id(model, "back") == 1 and camera_id(model, -1) == -1
    states = some_states("walker", 2)
    back = render(walker, states, WIDTH, HEIGHT, camera="back", shadows=False)
    np.testing.assert_array_equal(back, render(walker, states, WIDTH, HEIGHT, 1, shadows=False))
    assert (back != render(walker, states, WIDTH, HEIGHT, shadows=False)).any()
    with pytest.raises(ValueError, match=r"'front'.*\['side', 'back'\]"):
        render(walker, states, camera="front")
    with pytest.raises(ValueError, match="steps x"):
        render(walker, states[:, :-1])


def test_control_timestep_is_dm_controls():
    for name, task in TASK.items():
        domain = get_domain(name)
        assert control_timestep(domain) == pytest.approx(domain.load(task).control_timestep())


@pytest.mark.parametrize("domain_name", ["point_mass_maze", "walker"])
@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_videos_read_back_with_their_frames_size_and_rate(domain_name, suffix, tmp_path):
    frames = render(get_domain(domain_name), some_states(domain_name, 5), WIDTH, HEIGHT)
    path = write_video(tmp_path / "sub" / f"video{suffix}", frames, fps=25)
    back = iio.imread(path, index=None, plugin="pillow" if suffix == ".gif" else "FFMPEG")
    assert back.shape == frames.shape
    assert any((frame != back[0]).any() for frame in back[1:])
    if suffix == ".gif":
        assert iio.immeta(path, index=0)["duration"] == 40  # ms per frame
    else:
        assert iio.immeta(path, plugin="FFMPEG")["fps"] == 25


def test_bad_video_files_are_clear_errors(tmp_path):
    frames = np.zeros((2, 9, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"'\.avi'.*\['\.gif', '\.mp4'\]"):
        write_video(tmp_path / "v.avi", frames, 10)
    with pytest.raises(ValueError, match="even width and height"):
        write_video(tmp_path / "v.mp4", frames, 10)
    write_video(tmp_path / "v.gif", frames, 10)  # GIFs take any size
    with pytest.raises(ValueError, match="fps must be from 0.1 to 240 frames per second, got 0"):
        write_video(tmp_path / "w.gif", frames, 0)
    assert not (tmp_path / "w.gif").exists()


# ------------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny finished run on the maze: 20 quick-scale updates, one evaluation episode per task."""
    root = tmp_path_factory.mktemp("video_run")
    run, data = root / "run", root / "data"
    argv = ["train", "--scale", "quick", "--threads", "1", "--no-progress", "--out", str(run)]
    argv += ["--data-dir", str(data), "--set", "data.episodes=500", "train.steps=20"]
    argv += ["train.eval_every=20", "train.checkpoint_every=20", "eval.episodes=1"]
    assert main(argv) == 0
    return run, data, argv


def test_the_video_command_writes_the_frames_asked_for(trained, capsys, tmp_path):
    run, data, _ = trained
    out = tmp_path / "top_left.gif"
    argv = ["video", str(run), "--task", "reach_top_left", "--out", str(out)]
    argv += ["--width", "64", "--height", "48", "--every", "100", "--data-dir", str(data)]
    assert main(argv) == 0
    assert iio.imread(out, index=None).shape == (11, 48, 64, 3)  # states 0, 100, ..., 1000
    assert str(out) in capsys.readouterr().out


def test_the_rollout_is_the_runs_evaluation_episode(trained):
    """The same start and policy as the run's last evaluation: the same return and final distance
    as its record (this task's is not zero after 20 updates)."""
    run_dir, data, _ = trained
    run, _ = load_run(run_dir, data_root=data)
    result = rollout(run, "reach_top_left")
    saved = json.loads((run_dir / "record.json").read_text())["evaluations"][-1]["tasks"]
    assert saved["reach_top_left"]["returns"][0] > 1.0
    # up to rounding: the evaluation batched every task's episodes, this one only its own
    assert result.returns == pytest.approx(saved["reach_top_left"]["returns"], rel=1e-6)
    assert result.final_distance == pytest.approx(saved["reach_top_left"]["final_distance"])
    assert result.paths.shape == (1, 1001, 4)


def test_the_default_video_lives_in_the_run_and_the_run_still_resumes(trained, capsys):
    run, data, train_argv = trained
    argv = ["video", str(run), "--task", "reach_bottom_left", "--episodes", "2", "--every", "50"]
    argv += ["--width", "64", "--height", "48", "--no-shadows", "--data-dir", str(data)]
    assert main(argv) == 0
    path = run / "videos" / "reach_bottom_left_last.mp4"
    assert iio.imread(path, index=None, plugin="FFMPEG").shape == (2 * 21, 48, 64, 3)
    assert iio.immeta(path, plugin="FFMPEG")["fps"] == pytest.approx(50 / 50)  # real time
    assert main(train_argv) == 0  # the videos are the run's, not files zsrl did not write
    assert path.exists()
    assert main([*train_argv, "--no-resume"]) == 0  # a restarted run's videos would be stale
    assert not path.exists()


def test_a_videos_folder_where_no_run_is_stays_the_users(trained, tmp_path, capsys):
    _, _, train_argv = trained
    out = tmp_path / "mine"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "holiday.mp4").write_bytes(b"not zsrl's")
    argv = list(train_argv)
    argv[argv.index("--out") + 1] = str(out)
    assert main([*argv, "--no-resume"]) == 2
    assert "files zsrl did not write ['videos']" in capsys.readouterr().err
    assert (out / "videos" / "holiday.mp4").read_bytes() == b"not zsrl's"


def test_help_names_every_option(capsys):
    with pytest.raises(SystemExit) as done:
        main(["video", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--task", "--out", "--episodes", "--weights", "--every", "--camera", "--fps"):
        assert flag in text


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--task", "reach_moon"], ["'reach_moon'", "reach_top_left"]),
        (["--task", "reach_top_left", "--out", "v.avi"], ["v.avi", "'.gif', '.mp4'"]),
        (["--task", "reach_top_left", "--camera", "side"], ["'side'", "['top']"]),
        (["--task", "reach_top_left", "--every", "0"], ["--every", "at least 1"]),
        (["--task", "reach_top_left", "--fps", "inf"], ["fps must be from 0.1 to 240", "inf"]),
        (["--task", "reach_top_left", "--fps", "1e-9"], ["fps must be from 0.1", "1e-09"]),
        (["--task", "reach_top_left", "--width", "100000"], ["width must be from 1 to 4096"]),
    ],
)
def test_bad_video_options_are_one_line_errors(trained, capsys, extra, message):
    run, data, _ = trained
    assert main(["video", str(run), *extra, "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and all(m in err for m in message)


def test_a_missing_run_is_a_clear_error(capsys, tmp_path):
    assert main(["video", str(tmp_path / "nowhere"), "--task", "reach_top_left"]) == 2
    err = capsys.readouterr().err
    assert "no run directory" in err and "nowhere" in err
