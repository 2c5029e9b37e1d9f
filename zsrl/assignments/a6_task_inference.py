"""Assignment 6: zero-shot task inference and evaluation (book eq. (eq-z-inference)).

Part 1 (checked by :func:`check`). The student writes ``z_from_rewards(B_next, rewards)``, the task
vector of a reward from labelled samples, z_r = √d · normalise(mean_k r_k B(s'_k)), and
``z_from_goal(B_goal)``, the task vector of reaching a goal, z_g = √d · normalise(B(g)), row by row
for a batch of goals. The checker compares them with :func:`zsrl.losses.infer_z_from_rewards` and
:func:`zsrl.losses.normalize_to_sphere` on random inputs and names the usual mistakes (no
normalisation, the unit sphere instead of the sphere of radius √d, the rewards left out or used as a
0/1 mask, the mean over the wrong axis, a batch of goals normalised as one vector).

Part 2 (:func:`check_task_vectors`). ``task_vectors(model, tasks, dataset, how, n, seed)``, every
maze task's z for an FB model, from its goal observation (``how="goal"``) or from ``n``
reward-labelled transitions of the dataset (``how="rewards"``), against
:func:`zsrl.infer.infer_task_vectors`, on the model of :func:`provided_model`.

Part 3 (:func:`check_evaluation`). ``zero_shot_rollouts(model, domain, z, episodes, seed)``, the
returns and final distances to the goal of the deterministic policy π(s, z_task) on every task,
against :func:`zsrl.evaluate.evaluate`: the same start states (drawn once, shared by the tasks), the
reward of each step's next state, ``domain.episode_steps`` steps.
"""

from __future__ import annotations

import functools
import io
import math
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zsrl.assignments import Report, as_array, call, compare, diagnose, matches
from zsrl.config import apply_overrides, preset
from zsrl.data import Dataset
from zsrl.envs import BatchSim, Domain, Task
from zsrl.evaluate import evaluate
from zsrl.infer import infer_task_vectors
from zsrl.losses import infer_z_from_rewards, normalize_to_sphere
from zsrl.model import FBModel

NAME = "A6 part 1, task vectors"
NAME_TASKS = "A6 part 2, the maze's task vectors"
NAME_EVALUATION = "A6 part 3, the zero-shot evaluation"

SEED = 6
# (n samples, d): n ≠ d so that a mean over the wrong axis has the wrong shape.
REWARD_CASES = ((50, 8), (7, 16), (200, 4))
GOAL_CASES = ((), (5,), (3,))  # batch shapes of B_goal: one goal (d), then batches (m x d)

# The provided model: FB at quick scale on uniform-reset data, a few thousand updates.
MODEL_OVERRIDES = (
    "data.episodes=1000",  # 10k transitions
    "train.steps=2000",
    "train.eval_every=0",
    "train.checkpoint_every=0",
    "train.log_every=500",
    "eval.episodes=1",
)
INFERENCE_SAMPLES = 5_000
EPISODES = 3


# ---------------------------------------------------------------------------------------------------
# Part 1: the task vectors


def reward_inputs(n: int, d: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """B_next (n x d, rows of norm √d as the backward model's) and rewards (n, ≥ 0, half of them 0)."""
    B_next = normalize_to_sphere(torch.randn(n, d, generator=generator))  # n x d
    rewards = torch.rand(n, generator=generator) * 2  # n
    rewards[torch.rand(n, generator=generator) < 0.5] = 0.0  # sparse, as a goal's rewards are
    rewards[0] = 1.5  # at least one rewarded sample
    return B_next, rewards


def reward_mistakes(B_next: Tensor, rewards: Tensor) -> dict[str, Tensor]:
    """What the usual wrong z_from_rewards give, keyed by the hint that explains each."""
    weighted = (rewards[:, None] * B_next).mean(0)  # d
    d = B_next.shape[-1]
    return {
        "z is not normalised: z_r = √d · m/‖m‖ with m = mean_k r_k B(s'_k), on the sphere of "
        "radius √d where the policy was trained": weighted,
        "z has norm 1: the task vectors live on the sphere of radius √d (norm √d = "
        f"{math.sqrt(d):.3g} here), where the policy was trained; multiply by √d": weighted
        / weighted.norm(),
        "the rewards are missing: z_r weights each B(s'_k) by its reward r_k": normalize_to_sphere(
            B_next.mean(0)
        ),
        "you used the rewards as a 0/1 mask (the mean of B over the rewarded samples): weight "
        "each B(s'_k) by its reward r_k": normalize_to_sphere(B_next[rewards > 0].mean(0)),
    }


def goal_mistakes(B_goal: Tensor) -> dict[str, Tensor]:
    """What the usual wrong z_from_goal give, keyed by the hint that explains each."""
    d = B_goal.shape[-1]
    flat = B_goal * (d**0.5 / B_goal.norm())  # the whole batch as one vector
    return {
        "z is not normalised: z_g = √d · B(g)/‖B(g)‖": B_goal,
        "z has norm 1: the task vectors live on the sphere of radius √d; multiply by √d": (
            B_goal / B_goal.norm(dim=-1, keepdim=True)
        ),
        "you normalised the batch of goals as one vector: normalise each row B(g_i) separately "
        "(along the last dimension)": flat,
    }


def check(
    z_from_rewards: Callable[[Tensor, Tensor], Tensor], z_from_goal: Callable[[Tensor], Tensor]
) -> Report:
    """Compare ``z_from_rewards(B_next, rewards)`` and ``z_from_goal(B_goal)`` with the library's."""
    report = Report(NAME)
    generator = torch.Generator().manual_seed(SEED)
    for n, d in REWARD_CASES:
        B_next, rewards = reward_inputs(n, d, generator)
        context = f" on {n} samples, d = {d}"
        got = call(report, z_from_rewards, B_next.clone(), rewards.clone(), label=context)
        if got is None:
            return report
        want = infer_z_from_rewards(B_next, rewards)  # d
        if not matches(got, want):
            array = as_array(got)
            if array is not None and array.shape == (n,):
                return report.fail(
                    f"z_r{context} has shape ({n},), one number per sample: average over the "
                    f"samples (dim 0) and keep the d = {d} components"
                )
            hint = diagnose(got, reward_mistakes(B_next, rewards))
            if hint is not None:
                report.fail(f"z_r{context} is not the task vector: {hint}")
            compare(report, "z_r", got, want, context=context)
            return report
    for shape in GOAL_CASES:
        d = 6
        B_goal = torch.randn(*shape, d, generator=generator) * 3  # ... x d, any norm
        what = "one goal" if not shape else f"a batch of {shape[0]} goals"
        context = f" on {what}, d = {d}"
        got = call(report, z_from_goal, B_goal.clone(), label=context)
        if got is None:
            return report
        want = normalize_to_sphere(B_goal)
        if not matches(got, want):
            hint = diagnose(got, goal_mistakes(B_goal))
            if hint is not None:
                report.fail(f"z_g{context} is not the task vector: {hint}")
            compare(report, "z_g", got, want, context=context)
            return report
    report.messages.append(
        f"z_from_rewards matches on {len(REWARD_CASES)} random sets of labelled samples and "
        f"z_from_goal on one goal and on batches of goals"
    )
    return report


# ---------------------------------------------------------------------------------------------------
# The provided model


@functools.cache
def provided_model() -> tuple[FBModel, Domain, Dataset]:
    """An FB model trained at ``quick`` scale on the maze's uniform-reset data (10k transitions,
    2000 updates, seed 42: seconds on a CPU), its domain and its dataset. Trained once per process,
    in a temporary folder that is removed afterwards; deterministic for a given machine."""
    cfg = apply_overrides(preset("fb", "point_mass_maze", "quick"), list(MODEL_OVERRIDES))
    from zsrl.train import Trainer  # the trainer imports every agent: only when a model is needed

    quiet = io.StringIO()  # the trainer reports its evaluations even without a progress bar
    with tempfile.TemporaryDirectory() as folder, redirect_stdout(quiet), redirect_stderr(quiet):
        trainer = Trainer(cfg, Path(folder) / "run", data_root=Path(folder), progress=False)
        trainer.run(resume=False)
    trainer.model.eval()
    return trainer.model, trainer.domain, trainer.dataset


# ---------------------------------------------------------------------------------------------------
# Part 2: the maze's task vectors


def _same_rows(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``got`` with the same row of ``want``."""
    norms = np.linalg.norm(got, axis=-1) * np.linalg.norm(want, axis=-1)
    return (got * want).sum(-1) / np.maximum(norms, 1e-12)


def check_task_vectors(
    student_fn: Callable[..., Tensor],
    model: FBModel | None = None,
    dataset: Dataset | None = None,
    domain: Domain | None = None,
) -> Report:
    """Compare ``student_fn(model, tasks, dataset, how, n, seed)`` with
    :func:`zsrl.infer.infer_task_vectors` for ``how`` = "goal" and "rewards" on the maze's tasks
    (on :func:`provided_model` unless a model, its domain and dataset are given)."""
    report = Report(NAME_TASKS)
    if model is None:
        model, domain, dataset = provided_model()
    assert domain is not None and dataset is not None
    tasks = list(domain.tasks.values())
    for how in ("goal", "rewards"):
        context = f" from {'goal observations' if how == 'goal' else 'reward-labelled samples'}"
        args = (model, tasks, dataset, how, INFERENCE_SAMPLES, SEED)
        got = call(report, student_fn, *args, label=context)
        if got is None:
            return report
        want = infer_task_vectors(model, tasks, dataset, INFERENCE_SAMPLES, SEED, how)  # T x d
        if matches(got, want, rtol=1e-4, atol=1e-5):
            continue
        array = as_array(got)
        if array is None or array.shape != tuple(want.shape):
            shape = None if array is None else array.shape
            return report.fail(
                f"z{context} has shape {shape}, expected (tasks, d) = {tuple(want.shape)}: one row "
                "per task, in the order of `tasks`"
            )
        if how == "rewards":
            hint = _sampling_hint(array, model, tasks, dataset)
            if hint is not None:
                return report.fail(f"z{context}: {hint}")
        cosine = _same_rows(array, want.numpy())
        worst = int(np.argmin(cosine))
        return report.fail(
            f"z{context} differs from the library's, first for task {tasks[worst].name!r} "
            f"(cosine similarity {cosine[worst]:.4f} with the expected z)"
        )
    report.messages.append(
        f"the {len(tasks)} maze tasks' z match infer_task_vectors, from the goals and from "
        f"{INFERENCE_SAMPLES} reward-labelled samples"
    )
    return report


def _labelled(task: Task, dataset: Dataset, index: np.ndarray, at: str) -> tuple[Any, Any]:
    sample = dataset.select(index)
    obs = sample.next_observation if at == "next" else sample.observation
    return torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(sample.rewards(task))


def _sampling_hint(
    got: np.ndarray, model: FBModel, tasks: list[Task], dataset: Dataset
) -> str | None:
    """The typical mistake of the labelled-sample route that gives ``got``, if one does."""
    n, draw = INFERENCE_SAMPLES, lambda rng: rng.integers(0, len(dataset), size=INFERENCE_SAMPLES)
    shared = np.random.default_rng(SEED)
    variants: dict[str, list[Tensor]] = {"states": [], "one_generator": [], "no_replacement": []}
    for task in tasks:
        index = draw(np.random.default_rng(SEED))
        for name, (idx, at) in {
            "states": (index, "states"),
            "one_generator": (draw(shared), "next"),
            "no_replacement": (
                np.random.default_rng(SEED).choice(len(dataset), size=n, replace=False),
                "next",
            ),
        }.items():
            obs, rewards = _labelled(task, dataset, idx, at)
            variants[name].append(model.infer_z_from_rewards(obs, rewards))
    hints = {
        "states": "you evaluated B at the states s of the samples: the reward r(s', a) is earned on "
        "arriving in the next state, so z_r = mean_k r_k B(s'_k) uses sample.next_observation",
        "one_generator": "the first task's z is right, the others are not: draw each task's samples "
        "with a fresh np.random.default_rng(seed), as zsrl.infer.labelled_samples does, so that "
        "every task is labelled on the same transitions",
        "no_replacement": "you drew the samples without replacement: draw n indices with "
        "np.random.default_rng(seed).integers(0, len(dataset), size=n), as the library does",
    }
    for name, rows in variants.items():
        if matches(got, torch.stack(rows), rtol=1e-4, atol=1e-5):
            return hints[name]
    return None


# ---------------------------------------------------------------------------------------------------
# Part 3: the zero-shot evaluation


@torch.no_grad()
def rollouts(
    model: FBModel,
    domain: Domain,
    z: Tensor,
    episodes: int,
    seed: int,
    mistake: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns and final distances (tasks x episodes each) of π(s, z_task) from the evaluation's
    start states: what :func:`zsrl.evaluate.evaluate` computes for a given z (tasks x d, in the
    order of ``domain.tasks``), or, with ``mistake``, one of :data:`ROLLOUT_MISTAKES`."""
    tasks = list(domain.tasks.values())
    rng = np.random.default_rng(seed)
    if mistake == "starts_per_task":
        starts = np.concatenate([domain.sample_start(rng, episodes) for _ in tasks])  # n x P
    else:
        starts = np.tile(domain.sample_start(rng, episodes), (len(tasks), 1))  # n x P
    rows = z[:1].expand(len(tasks), -1) if mistake == "first_z" else z  # tasks x d
    rows = rows.repeat_interleave(episodes, dim=0)  # n x d
    steps = domain.episode_steps + {"one_short": -1, "one_long": 1}.get(mistake or "", 0)
    sim = BatchSim(domain, len(starts))
    sim.set_states(starts)
    states = sim.states()  # n x P
    returns = np.zeros((len(tasks), episodes))
    for _ in range(steps):
        obs = torch.as_tensor(domain.observe(states))  # n x O
        action = model.act(obs, rows).numpy().astype(np.float64)  # n x A
        before = states
        states = sim.step(action)  # n x P
        scored = before if mistake == "reward_before" else states
        per_task = scored.reshape(len(tasks), episodes, -1)  # tasks x episodes x P
        per_action = action.reshape(len(tasks), episodes, -1)  # tasks x episodes x A
        for k, task in enumerate(tasks):
            returns[k] += task.reward(per_task[k], per_action[k])
    final = states.reshape(len(tasks), episodes, -1)
    distance = np.stack([task.distance(final[k]) for k, task in enumerate(tasks)])
    return returns, distance  # tasks x episodes each


ROLLOUT_MISTAKES = {
    "reward_before": "you scored each step by the state before it: the reward r(s', a) belongs to "
    "the state the step arrives in (domain rewards are functions of the next state)",
    "one_short": "your episodes are one step short: take domain.episode_steps steps (1000 here)",
    "one_long": "your episodes are one step too long: take domain.episode_steps steps",
    "starts_per_task": "each task drew its own start states: draw them once, "
    "domain.sample_start(np.random.default_rng(seed), episodes), and start every task from the "
    "same ones (paired comparisons between tasks)",
    "first_z": "every task ran with the first task's z: row k of z is task k's",
}


def check_evaluation(
    student_fn: Callable[..., Any],
    model: FBModel | None = None,
    dataset: Dataset | None = None,
    domain: Domain | None = None,
) -> Report:
    """Compare ``student_fn(model, domain, z, episodes, seed)`` -> (returns, final distances), each
    tasks x episodes, with :func:`zsrl.evaluate.evaluate` on the goal-inferred z of every task."""
    report = Report(NAME_EVALUATION)
    if model is None:
        model, domain, dataset = provided_model()
    assert domain is not None and dataset is not None
    names = list(domain.tasks)
    z = infer_task_vectors(model, list(domain.tasks.values()), dataset, INFERENCE_SAMPLES, SEED)
    context = f" ({len(names)} tasks x {EPISODES} episodes, seed {SEED})"
    got = call(report, student_fn, model, domain, z.clone(), EPISODES, SEED, label=context)
    if got is None:
        return report
    if not isinstance(got, tuple) or len(got) != 2:
        return report.fail(
            f"the evaluation{context} returned a {type(got).__name__}: return a pair "
            "(returns, final_distance), each tasks x episodes"
        )
    results = evaluate(
        model, domain, names, EPISODES, SEED, dataset, INFERENCE_SAMPLES, goal_inference="goal"
    )
    want = (
        np.array([results[name].returns for name in names]),  # tasks x episodes
        np.array([results[name].final_distance for name in names]),  # tasks x episodes
    )
    for what, mine, expected in zip(("returns", "final distances"), got, want, strict=True):
        if matches(mine, expected, rtol=1e-6, atol=1e-9):
            continue
        again = call(report, student_fn, model, domain, z.clone(), EPISODES, SEED, label=context)
        if again is not None and not matches(again[0], got[0], rtol=0, atol=0):
            return report.fail(
                f"two evaluations{context} gave different returns: the evaluation uses the "
                "policy's mean action, model.act(obs, z) (noisy=False), and seeded start states"
            )
        for mistake, hint in ROLLOUT_MISTAKES.items():
            variant = rollouts(model, domain, z, EPISODES, SEED, mistake)
            index = 0 if what == "returns" else 1
            if matches(mine, variant[index], rtol=1e-6, atol=1e-9):
                return report.fail(f"the {what}{context} are not the evaluation's: {hint}")
        compare(report, f"the {what}", mine, expected, rtol=1e-6, atol=1e-9, context=context)
        return report
    report.result = got
    report.messages.append(
        f"the returns and final distances of {len(names)} tasks x {EPISODES} episodes match "
        "zsrl.evaluate.evaluate"
    )
    return report
