"""The trainer end to end: records, checkpoints, exact resume, failure handling."""

import itertools
import json

import pytest
import torch

from zsrl.config import apply_overrides, preset
from zsrl.methods import get_method, method_names
from zsrl.record import seal
from zsrl.train import (
    BEST_MODEL,
    CHECKPOINT,
    METRICS,
    RECORD,
    CheckpointError,
    NonFiniteLossError,
    RunFolderError,
    Trainer,
    load_checkpoint,
    load_run,
)

SMALL = [
    "data.episodes=500",  # 5k uniform-reset transitions: fast to collect
    "train.steps=40",
    "train.log_every=10",
    "train.eval_every=20",
    "train.checkpoint_every=20",
    "eval.episodes=1",
]


def config(*extra, method="fb"):
    single = ["eval.tasks=['reach_top_left']"] if get_method(method).single_task else []
    return apply_overrides(preset(method, "point_mass_maze", "quick"), [*SMALL, *single, *extra])


def weights(run_dir):
    state = load_checkpoint(run_dir / CHECKPOINT)["agent"]
    return torch.cat([v.flatten().float() for v in state["model"].values()])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_quick_run_writes_a_complete_record(tmp_path, data_root):
    record = Trainer(
        config(), tmp_path, command="pytest", data_root=data_root, progress=False
    ).run()
    on_disk = json.loads((tmp_path / RECORD).read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert record["complete"] and record["steps_done"] == 40 and record["scale"] == "quick"
    assert record["command"] == "pytest"
    assert record["config"]["agent"]["z_dim"] == 16
    assert record["environment"]["packages"]["mujoco"] == "3.17.0"
    assert record["environment"]["device"] == "cpu"
    assert record["wall_time_s"] > 0
    assert record["dataset"]["transitions"] == 5000 and len(record["dataset"]["sha256"]) == 64
    assert [e["step"] for e in record["evaluations"]] == [0, 20, 40]
    tasks = {"reach_top_left", "reach_top_right", "reach_bottom_left", "reach_bottom_right"}
    for entry in record["evaluations"]:
        assert set(entry["tasks"]) == tasks
        for result in entry["tasks"].values():
            assert len(result["returns"]) == 1 and len(result["final_distance"]) == 1
    assert record["last"]["step"] == 40
    assert record["best"]["mean_score"] == max(e["mean_score"] for e in record["evaluations"])
    rows = (tmp_path / METRICS).read_text().splitlines()
    assert rows[0].startswith("step,elapsed_s,fb_loss") and len(rows) == 1 + 4
    assert rows[0].endswith("q_data,q_uniform,q_policy")  # the value probe


@pytest.mark.parametrize("method", ["fb", "mcfb", *method_names("baseline")])
def test_resume_is_identical_to_an_uninterrupted_run(tmp_path, data_root, method):
    straight = tmp_path / "straight"
    Trainer(config(method=method), straight, data_root=data_root, progress=False).run()
    split = tmp_path / "split"
    short = config("train.steps=20", method=method)
    Trainer(short, split, data_root=data_root, progress=False).run()
    assert load_checkpoint(split / CHECKPOINT)["step"] == 20
    resumed = Trainer(config(method=method), split, data_root=data_root, progress=False)
    record = resumed.run()
    assert torch.equal(weights(straight), weights(split))
    assert record["steps_done"] == 40
    assert [e["step"] for e in record["evaluations"]] == [0, 20, 40]
    # the metrics of both runs agree row by row (all but the wall-clock column)
    assert metric_rows(straight / METRICS) == metric_rows(split / METRICS)


@pytest.mark.parametrize("method", method_names("baseline"))
def test_baselines_train_and_evaluate_through_the_trainer(tmp_path, data_root, method):
    record = Trainer(config(method=method), tmp_path, data_root=data_root, progress=False).run()
    assert record["method"] == method and record["complete"] and record["steps_done"] == 40
    expected = ["reach_top_left"] if get_method(method).single_task else sorted(record["tasks"])
    assert sorted(record["evaluations"][-1]["scores"]) == expected
    assert record["single_task"] == ("reach_top_left" if get_method(method).single_task else None)
    header = (tmp_path / METRICS).read_text().splitlines()[0].split(",")
    assert set(
        Trainer(config(method=method), tmp_path / "x", data_root=data_root).agent.progress_keys
    ) <= set(header)
    # the value probe is logged for every model with action values (all but GC-IQL's)
    assert ("q_data" in header) == (method != "gciql")


def test_single_task_methods_need_exactly_one_task(tmp_path, data_root):
    cfg = apply_overrides(preset("td3", "point_mass_maze", "quick"), SMALL)
    with pytest.raises(ValueError, match="exactly one task.*valid tasks: \\['reach_bottom_left'"):
        Trainer(cfg, tmp_path, data_root=data_root, progress=False)
    two = apply_overrides(cfg, ["eval.tasks=['reach_top_left', 'reach_top_right']"])
    with pytest.raises(ValueError, match="exactly one task"):
        two.validate()


def test_single_task_rewards_are_relabelled_from_physics(tmp_path, data_root):
    trainer = Trainer(config(method="td3"), tmp_path, data_root=data_root, progress=False)
    task = trainer.domain.task("reach_top_left")
    expected = task.reward(trainer.dataset.next_physics, trainer.dataset.action)
    torch.testing.assert_close(trainer.data.reward, torch.as_tensor(expected, dtype=torch.float32))
    assert trainer.sample_batch().reward.shape == (trainer.agent.batch_size,)


def metric_rows(path):
    return [row.split(",")[:1] + row.split(",")[2:] for row in path.read_text().splitlines()]


def test_best_weights_are_those_of_the_best_evaluation(tmp_path, data_root):
    record = Trainer(config(), tmp_path, data_root=data_root, progress=False).run()
    best = load_checkpoint(tmp_path / BEST_MODEL)
    first_best = next(
        e for e in record["evaluations"] if e["mean_score"] == record["best"]["mean_score"]
    )
    assert best["step"] == first_best["step"]
    trainer, step = load_run(tmp_path, "best", data_root=data_root)
    assert step == best["step"]
    for name, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, best["model"][name])
    # the last weights are the checkpoint's
    last, step = load_run(tmp_path, "last", data_root=data_root)
    assert step == 40
    saved = load_checkpoint(tmp_path / CHECKPOINT)["agent"]["model"]
    for name, value in last.model.state_dict().items():
        torch.testing.assert_close(value, saved[name])
    with pytest.raises(ValueError, match="valid: \\['last', 'best'\\]"):
        load_run(tmp_path, "final")


def test_best_weights_follow_the_best_evaluation_not_the_first(tmp_path, data_root, monkeypatch):
    import zsrl.train
    from zsrl.evaluate import TaskResult

    # evaluations at steps 0, 20, 40 score 1, 3, 2: the best is step 20 (later runs score 0)
    scores = itertools.chain([1.0, 3.0, 2.0], itertools.repeat(0.0))

    def fake_evaluate(model, domain, task_names, **kwargs):
        score = next(scores)
        return {name: TaskResult([score], score, None) for name in task_names}

    monkeypatch.setattr(zsrl.train, "evaluate", fake_evaluate)
    record = Trainer(config(), tmp_path / "run", data_root=data_root, progress=False).run()
    assert [e["mean_score"] for e in record["evaluations"]] == [1.0, 3.0, 2.0]
    assert record["best"]["step"] == 20
    best = load_checkpoint(tmp_path / "run" / BEST_MODEL)
    assert best["step"] == 20
    # the same seed stopped at step 20 ends with exactly the best weights
    Trainer(config("train.steps=20"), tmp_path / "short", data_root=data_root, progress=False).run()
    at_20 = load_checkpoint(tmp_path / "short" / CHECKPOINT)["agent"]["model"]
    for name, value in best["model"].items():
        torch.testing.assert_close(value, at_20[name])
    trainer, step = load_run(tmp_path / "run", "best", data_root=data_root)
    assert step == 20 and trainer.step == 20 and len(trainer.evaluations) == 3
    # best weights that no longer match the record are refused
    record_path = tmp_path / "run" / RECORD
    stale = json.loads(record_path.read_text())
    stale["best"]["step"] = 40
    record_path.write_text(json.dumps(seal(stale)))  # well-formed, but not the weights' record
    with pytest.raises(CheckpointError, match="best evaluation .* is at step 40"):
        load_run(tmp_path / "run", "best", data_root=data_root)


def test_different_seeds_differ(tmp_path, data_root):
    Trainer(config("train.steps=10"), tmp_path / "a", data_root=data_root, progress=False).run()
    Trainer(
        config("train.steps=10", "train.seed=1"),
        tmp_path / "b",
        data_root=data_root,
        progress=False,
    ).run()
    assert not torch.equal(weights(tmp_path / "a"), weights(tmp_path / "b"))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_root):
    trainer = Trainer(config("train.steps=20"), tmp_path, data_root=data_root, progress=False)
    trainer.run()
    good = weights(tmp_path)
    trainer = Trainer(config(), tmp_path, data_root=data_root, progress=False)
    update = trainer.agent.update

    def poisoned(batch):
        metrics = update(batch)
        if trainer.step >= 25:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.fill_(float("nan"))
            metrics["fb_loss"] = torch.tensor(float("nan"))
        return metrics

    trainer.agent.update = poisoned
    with pytest.raises(NonFiniteLossError, match="fb_loss"):
        trainer.run()
    assert load_checkpoint(tmp_path / CHECKPOINT)["step"] == 20
    assert torch.equal(weights(tmp_path), good)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, data_root):
    Trainer(config("train.steps=10"), tmp_path, data_root=data_root, progress=False).run()
    path = tmp_path / CHECKPOINT
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=str(path)):
        Trainer(config(), tmp_path, data_root=data_root, progress=False).run()


def test_resuming_with_another_config_is_refused(tmp_path, data_root):
    Trainer(config("train.steps=10"), tmp_path, data_root=data_root, progress=False).run()
    with pytest.raises(RunFolderError, match=r"another run \(agent.lr_fb: 0.0001 -> 0.5\)"):
        Trainer(config("agent.lr_fb=0.5"), tmp_path, data_root=data_root, progress=False).run()
    other = Trainer(
        config("agent.lr_fb=0.5"), tmp_path, data_root=data_root, progress=False, overwrite=True
    )
    assert other.run()["config"]["agent"]["lr_fb"] == 0.5  # replaced, as asked


def test_checkpoint_from_before_a_new_config_field_resumes(tmp_path, data_root):
    Trainer(config("train.steps=10"), tmp_path, data_root=data_root, progress=False).run()
    state = load_checkpoint(tmp_path / CHECKPOINT)
    saved = json.loads(state["config"])
    del saved["agent"]["forward_layernorm"]  # as written by a zsrl without the field
    state["config"] = json.dumps(saved)
    torch.save(state, tmp_path / CHECKPOINT)
    trainer = Trainer(config("train.steps=20"), tmp_path, data_root=data_root, progress=False)
    assert trainer.resume() and trainer.step == 10


@pytest.mark.parametrize(
    "override, listed",
    [
        ("eval.goal_inference='oracle'", "rewards"),
        ("data.name='rnd-10m'", "uniform-reset"),
        ("eval.tasks=['reach_moon']", "reach_top_left"),
        ("scale='huge'", "paper"),
    ],
)
def test_trainer_refuses_bad_choices_before_training(tmp_path, data_root, override, listed):
    with pytest.raises(ValueError, match=listed):
        Trainer(config(override), tmp_path, data_root=data_root, progress=False)
    assert not (tmp_path / CHECKPOINT).exists()
