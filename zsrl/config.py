"""Typed run configuration: nested dataclasses, presets per (method, domain, scale), strict dicts.

One object describes a run; the command line, the presets, the notebooks and the result records all
build or store the same thing. ``from_dict`` refuses unknown keys, so a typo is an error, not a default.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SCALES = ("quick", "book", "paper")


@dataclass
class ConservativeConfig:
    """The penalty of VC-FB, MC-FB and DVC-FB (reference: ref-conservative-hyperparameters); FB ignores it."""

    action_samples: int = 12  # K per state: uniform, π(s, z) at s, π(s', z) at s', dataset action
    ood_action_weight: float = 0.5  # share of the K samples drawn uniformly
    lagrange: bool = True  # tune α towards target_penalty; False keeps α = alpha
    target_penalty: float = 50.0  # τ, the conservative budget
    alpha: float = 0.01  # the fixed α when lagrange is False
    log_alpha_init: float = 0.0  # log α at the start (α = 1)
    lr_alpha: float = 1e-4  # Adam learning rate of log α
    # Share of each batch's states that get the K action samples. 1 is the paper; a smaller share is
    # an unbiased, noisier estimate of the same penalty at a fraction of its cost (the K samples
    # cost about 2x an FB update on a CPU, where F's matrix products bound the time).
    penalty_states: float = 1.0

    def sample_counts(self) -> tuple[int, int]:
        """(uniform samples, samples per policy/data source) of the K per state (reference:
        ref-action-samples)."""
        if not 0 < self.penalty_states <= 1:
            raise ValueError(f"penalty_states {self.penalty_states!r} must be in (0, 1]")
        w, k = self.ood_action_weight, self.action_samples
        if not (0 < w <= 1 and (4 * w) == int(4 * w)):
            raise ValueError(
                f"ood_action_weight {w!r} must be a multiple of 0.25 in (0, 1]; "
                "valid choices: [0.25, 0.5, 0.75, 1.0]"
            )
        n_uniform = round(k * w)
        n_policy = (k - n_uniform) // 3
        if n_uniform + 3 * n_policy != k or n_uniform < 1:
            raise ValueError(
                f"action_samples {k} with ood_action_weight {w} does not split into n_uniform + "
                "3·n_policy samples (uniform, π(s), π(s'), dataset); e.g. action_samples=12"
            )
        return n_uniform, n_policy


@dataclass
class ForwardActorConfig:
    """What FB and SF-LAP share: a two-headed forward net over (s, a, z), the z-conditioned actor,
    task-vector mixing and the optimisation. Defaults are the paper's (reference: ref-fb-architecture,
    ref-sf-lap)."""

    z_dim: int = 50  # d; 100 on the maze
    discount: float = 0.98  # γ; 0.99 on the maze
    batch_size: int = 512
    lr_actor: float = 1e-4
    ortho_coefficient: float = 1.0  # λ of the orthonormality loss (on B for FB, on φ for SF-LAP)
    target_tau: float = 0.01  # Polyak: θ̄ ← τ θ + (1 − τ) θ̄, every update
    z_mix_ratio: float = 0.5  # share of task vectors taken from the batch's states (B(s) or φ C⁺)
    actor_std: float = 0.2  # σ of the actor's truncated-normal noise
    actor_std_clip: float = 0.3  # noise clipped to ±clip
    grad_clamp: float = 1.0  # elementwise gradient clamp (0 disables)
    preprocessor_hidden: int = 1024  # obs-action / obs-z / actor preprocessors
    preprocessor_layers: int = 2
    preprocessor_out: int = 512
    forward_hidden: int = 1024  # each of the two F (or ψ) heads
    forward_layers: int = 2
    actor_hidden: int = 1024
    layernorm_input: bool = False  # first layer Linear→LayerNorm→Tanh instead of Linear→ReLU
    normalize_obs: bool = False  # standardise observations with dataset statistics
    # LayerNorm before each hidden ReLU of F's two heads. Not in the paper: a known stabiliser of
    # bootstrapped (TD) losses, for probing the measure's divergence on narrow data at book scale.
    forward_layernorm: bool = False
    # Orthogonal weights and zero biases in every linear layer of F, B and the actor, as in
    # controllable_agent and Meta Motivo (not in the paper's code, which keeps PyTorch's default).
    orthogonal_init: bool = False


@dataclass
class FBConfig(ForwardActorConfig):
    """FB hyperparameters (reference: ref-fb, ref-hyperparameters), and the penalty of its conservative
    variants."""

    lr_fb: float = 1e-4  # Adam learning rate of F and B
    lr_b_coefficient: float = 1.0  # scales B's learning rate
    # How the target measure combines F's two heads: "min" (the paper) or "mean" (Meta Motivo).
    target_heads: str = "min"
    # The actor's objective: "max_q" (the paper: maximise min_j F_jᵀz at its own actions) or "awr"
    # (advantage-weighted regression towards the dataset's actions; Cetin, Touati & Ollivier 2025).
    actor_objective: str = "max_q"
    awr_temperature: float = 1.0  # β, in units of the batch's advantage standard deviation
    awr_max_weight: float = 100.0  # the weights N·softmax(A / (β·std A)) are clipped here
    backward_hidden: int = 256
    backward_layers: int = 3
    conservative: ConservativeConfig = field(default_factory=ConservativeConfig)


@dataclass
class SFConfig(ForwardActorConfig):
    """SF-LAP (reference: ref-sf-lap): Laplacian features φ(s) and successor features ψ(s, a, z) trained
    with a TD loss on Q = ψᵀz; ψ and the actor have FB's architecture."""

    lr_sf: float = 1e-4  # Adam learning rate of ψ
    lr_features: float = 5e-4  # Adam learning rate of φ
    feature_hidden: int = 256  # φ: [Linear→LayerNorm→Tanh, then Linear→ReLU] x feature_layers
    feature_layers: int = 3


@dataclass
class GCIQLConfig:
    """Goal-conditioned IQL, the value-only variant of the paper's code (reference: ref-gciql)."""

    discount: float = 0.98  # γ (the paper's command-line value)
    batch_size: int = 1024
    lr_value: float = 1e-4
    lr_actor: float = 1e-4
    target_tau: float = 0.005  # Polyak, every update
    expectile: float = 0.7  # τ_e of the expectile value loss
    temperature: float = 1.0  # β of the advantage-weighted actor
    max_weight: float = 100.0  # AWR weights clipped here
    value_hidden: int = 1024  # each of the two V(s, g) nets: Linear→LayerNorm→Tanh, then ReLU
    value_layers: int = 2
    actor_hidden: int = 1024  # the Gaussian actor on [s, g]: ReLU layers, no LayerNorm
    actor_layers: int = 2
    log_std_min: float = -5.0  # log σ = min + (max − min)·(tanh(x) + 1)/2
    log_std_max: float = 2.0
    # goal sampling for every batch: a future state (t + Geometric(p)), a state of the same episode,
    # or the current state
    p_future: float = 0.5
    p_random: float = 0.3
    p_current: float = 0.2
    geometric_p: float = 0.01
    normalize_obs: bool = False


@dataclass
class CQLConfig:
    """Single-task CQL on SAC (reference: ref-cql), with the Lagrangian α of the paper's ExORL runs."""

    discount: float = 0.98
    batch_size: int = 1024
    lr_critic: float = 1e-4
    lr_actor: float = 1e-4
    lr_temperature: float = 1e-4  # SAC's entropy temperature
    init_temperature: float = 0.1
    target_tau: float = 0.005
    target_update_every: int = 2  # Polyak-average the critic targets every k updates
    critic_hidden: int = 1024  # two Q(s, a) MLPs, ReLU
    critic_layers: int = 2
    actor_hidden: int = 1024  # tanh-Gaussian actor, log σ clamped to [log_std_min, log_std_max]
    actor_layers: int = 2
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    cql_samples: int = 3  # actions per source: uniform, π(s), π(s'); all scored at s
    lagrange: bool = True  # tune α towards target_penalty; False keeps α = alpha
    target_penalty: float = 50.0
    alpha: float = 0.01  # the fixed α when lagrange is False (the paper's D4RL setting)
    log_alpha_init: float = 0.0
    lr_alpha: float = 1e-4
    normalize_obs: bool = False


@dataclass
class TD3Config:
    """Offline TD3 without a behaviour-cloning term (reference: ref-td3)."""

    discount: float = 0.98
    batch_size: int = 1024
    lr_critic: float = 1e-4
    lr_actor: float = 1e-4
    target_tau: float = 0.01  # Polyak averaging of the critics, every update (no target actor)
    critic_hidden: int = 1024  # two Q(s, a) MLPs, first layer Linear→LayerNorm→Tanh
    critic_layers: int = 2
    actor_hidden: int = 1024  # Linear→LayerNorm→Tanh, Linear→ReLU, Linear→tanh
    actor_std: float = 0.2  # truncated-normal exploration and target-smoothing noise
    actor_std_clip: float = 0.3
    normalize_obs: bool = False


# The agent configuration classes of the built-in methods; a method names its own (zsrl.methods).
AgentConfig = FBConfig | SFConfig | GCIQLConfig | CQLConfig | TD3Config


@dataclass
class DataConfig:
    """Which dataset to train on (reference: ref-datasets)."""

    source: str = "collect"  # where the data come from (zsrl.data.sources): our collectors' cache
    name: str = "uniform-reset"  # the dataset's name; for ``collect``, a collector: random, rnd...
    path: str | None = None  # the file or directory a file source reads (None for ``collect``)
    episodes: int | None = None  # None: the collector's default (100k transitions)
    collect_seed: int = 0
    n_transitions: int | None = None  # subsample to n (reference: ref-subsets); None keeps all
    subsample_seed: int = 42  # the subsample's own RNG, independent of the training seed
    action_filter: str | None = None  # e.g. "no_left" (reference: ref-didactic)


@dataclass
class TrainConfig:
    steps: int = 1_000_000
    eval_every: int = 20_000  # 0: only at the end (and at step 0)
    log_every: int = 1_000  # metrics are gathered (one host sync) every log_every updates
    checkpoint_every: int = 20_000  # 0: only at the end
    seed: int = 42
    device: str = "auto"  # auto: cuda, then mps, then cpu
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    # A logged metric whose magnitude passes this warns (once per metric, on stderr and in the
    # record): exploding values are a finding, not a crash. None: never.
    warn_above: float | None = 1e6


@dataclass
class EvalConfig:
    episodes: int = 10  # rollouts per task per evaluation (reference: ref-evaluation)
    tasks: list[str] | None = None  # None: every task of the domain
    seed: int = 0  # start states of evaluation episodes (independent of training)
    # reward-labelled samples for reward tasks (reference: ref-task-inference)
    inference_samples: int = 10_000
    # goal tasks: z = B(goal) (reference: ref-task-inference), or "rewards" like reward tasks
    goal_inference: str = "goal"


@dataclass
class RunConfig:
    method: str = "fb"
    domain: str = "point_mass_maze"
    scale: str = "paper"
    agent: AgentConfig = field(default_factory=FBConfig)  # the class its method declares
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Check every named choice against its registry; a bad one lists the valid ones."""
        from zsrl.data import ACTION_FILTERS, check_supports, collector_names
        from zsrl.envs import get_domain
        from zsrl.infer import GOAL_INFERENCE
        from zsrl.methods import get_method

        method = get_method(self.method)
        _check_choice("scale", self.scale, SCALES)
        check_limits(self)
        from zsrl.data.sources import source_names

        _check_choice("data source", self.data.source, source_names())
        if self.data.source == "collect":
            if self.data.path is not None:
                raise ValueError(
                    f"data.path {self.data.path!r} is read by a file data source only: name one "
                    f"(--data-source, one of {[s for s in source_names() if s != 'collect']})"
                )
            if self.data.name in collector_names():  # known, perhaps not on this domain
                check_supports(self.data.name, get_domain(self.domain))
            _check_choice("dataset", self.data.name, collector_names(self.domain))
        if self.data.action_filter is not None:
            _check_choice("action filter", self.data.action_filter, ACTION_FILTERS)
        _check_choice("goal_inference", self.eval.goal_inference, GOAL_INFERENCE)
        expected = method.config
        if type(self.agent) is not expected:
            raise ValueError(
                f"method {self.method!r} takes an agent config of type {expected.__name__}, "
                f"got {type(self.agent).__name__}"
            )
        if isinstance(self.agent, FBConfig):
            from zsrl.losses import ACTOR_OBJECTIVES, TARGET_HEADS

            _check_choice("target_heads", self.agent.target_heads, TARGET_HEADS)
            _check_choice("actor_objective", self.agent.actor_objective, ACTOR_OBJECTIVES)
        if method.conservative:
            self.agent.conservative.sample_counts()
        domain = get_domain(self.domain)
        for task in self.eval.tasks or []:
            domain.task(task)
        repeated = sorted({t for t in self.eval.tasks or [] if self.eval.tasks.count(t) > 1})
        if repeated:
            raise ValueError(f"tasks {repeated} are named more than once in {self.eval.tasks!r}")
        if method.single_task and len(self.eval.tasks or []) != 1:
            raise ValueError(
                f"method {self.method!r} learns one task from its rewards: name exactly one task "
                f"(--tasks NAME or eval.tasks=['NAME']), got {self.eval.tasks!r}; valid tasks: "
                f"{sorted(domain.tasks)}"
            )

    @property
    def single_task(self) -> str | None:
        """The task a single-task method (cql, td3) is trained for; None for zero-shot methods."""
        from zsrl.methods import get_method

        return (
            self.eval.tasks[0] if get_method(self.method).single_task and self.eval.tasks else None
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """The configuration a dict describes; the agent section's class follows ``method``."""
        from zsrl.methods import get_method

        data = dict(data)
        kind = get_method(data.get("method", "fb")).config
        agent = _from_dict(kind, data.pop("agent", {}), "agent.")
        return dataclasses.replace(_from_dict(cls, data), agent=agent)


def _from_dict(cls: type, data: dict[str, Any], path: str = "") -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{path.rstrip('.')} is a section: set its keys, e.g. {path}KEY=VALUE")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"unknown config keys {[path + k for k in unknown]}; valid keys: {sorted(names)}"
        )
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            value = _from_dict(hint, value, f"{path}{key}.")
        else:
            value = _typed(value, hint, path + key)
        kwargs[key] = value
    return cls(**kwargs)


def _describe(hint: Any) -> str:
    """How an error names the values a type hint allows."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if typing.get_origin(hint) is list:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    names = {int: "an integer", float: "a number", bool: "True or False", str: "a string"}
    return "None" if hint is type(None) else names.get(hint, str(hint))


def _typed(value: Any, hint: Any, name: str) -> Any:
    """``value`` checked against the field's type hint (an integer is a float where one is
    expected); a mismatch is a ValueError naming the field, the value and what it allows."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _typed(value, arg, name)
                except ValueError:
                    pass
    elif origin is list:
        if isinstance(value, list):
            return [_typed(item, args[0], name) for item in value]
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ValueError(f"{name} must be {_describe(hint)}, got {value!r}")


# The range of every numeric option, by its dotted name (fnmatch patterns; the first match decides).
# Every number must also be finite. None, where a field allows it, is always in range.
_AT_LEAST_ONE = (
    "agent.batch_size agent.z_dim agent.*_hidden agent.*_layers agent.preprocessor_out "
    "agent.cql_samples agent.target_update_every agent.conservative.action_samples data.episodes "
    "data.n_transitions train.steps train.threads eval.episodes eval.inference_samples"
).split()
_UNIT_INTERVAL = (
    "agent.target_tau agent.z_mix_ratio agent.expectile agent.p_* agent.geometric_p "
    "agent.conservative.ood_action_weight agent.conservative.penalty_states"
).split()
_NON_NEGATIVE = (
    "agent.lr_* agent.conservative.lr_alpha agent.actor_std agent.actor_std_clip agent.*temperature "
    "agent.*max_weight agent.alpha agent.conservative.alpha agent.ortho_coefficient "
    "agent.grad_clamp agent.lr_b_coefficient *seed train.*_every"  # every 0: only at the end
).split()
LIMITS: tuple[tuple[str, Callable[[float], bool], str], ...] = (
    ("agent.discount", lambda v: 0 <= v < 1, "in [0, 1)"),
    *((p, lambda v: v >= 1, "at least 1") for p in _AT_LEAST_ONE),
    *((p, lambda v: 0 <= v <= 1, "in [0, 1]") for p in _UNIT_INTERVAL),
    *((p, lambda v: v >= 0, "at least 0") for p in _NON_NEGATIVE),
)


def check_limits(config: RunConfig) -> None:
    """Every numeric field of ``config`` within its range (:data:`LIMITS`) and finite; the first
    that is not is a ValueError naming it, its value and its range."""
    for name, value in _flat(config.to_dict()).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        for pattern, ok, allowed in LIMITS:
            if fnmatch.fnmatchcase(name, pattern):
                if not ok(value):
                    raise ValueError(f"{name} must be {allowed}, got {value!r}")
                break


def _check_choice(kind: str, value: str, choices: typing.Iterable[str]) -> None:
    choices = sorted(choices)
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; valid choices: {choices}")


# Training and evaluation per scale, for every method: `paper` is the paper's (reference:
# ref-hyperparameters); `book` fits a run of the maze experiments into 15-45 minutes of one core of
# this project's 2-core CPU; `quick` runs in seconds, for tests. Each method's agent presets are in
# its declaration (zsrl.methods).
_SCALE_TRAIN: dict[str, dict[str, Any]] = {
    "paper": dict(steps=1_000_000, eval_every=20_000, log_every=1_000, checkpoint_every=20_000),
    "book": dict(steps=30_000, eval_every=2_500, log_every=500, checkpoint_every=2_500),
    "quick": dict(steps=300, eval_every=150, log_every=50, checkpoint_every=150),
}
_SCALE_EVAL: dict[str, dict[str, Any]] = {
    "paper": dict(episodes=10),
    "book": dict(episodes=5),
    "quick": dict(episodes=1),
}


def preset(method: str = "fb", domain: str = "point_mass_maze", scale: str = "book") -> RunConfig:
    """The resolved configuration for a (method, domain, scale)."""
    return preset_with_sources(method, domain, scale)[0]


def preset_with_sources(
    method: str = "fb", domain: str = "point_mass_maze", scale: str = "book"
) -> tuple[RunConfig, dict[str, str]]:
    """The resolved configuration and, for each field the preset sets, why (``"agent.z_dim"`` ->
    the reason its method declares; ``"train.steps"`` -> ``"book scale"``).

    The agent section is the method's configuration class (the paper's values) with the method's
    presets that apply to (domain, scale) laid over it in their declared order; training and
    evaluation follow the scale.
    """
    from zsrl.envs import domain_names, get_domain
    from zsrl.methods import get_method

    spec = get_method(method)
    _check_choice("domain", domain, domain_names())
    data = DataConfig(name=get_domain(domain).default_dataset)
    _check_choice("scale", scale, SCALES)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in spec.presets:
        if layer.applies(domain, scale):
            values |= layer.values
            sources |= {f"agent.{key}": layer.why for key in layer.values}
    agent = _from_dict(spec.config, _nest(values), "agent.")
    train, evaluation = _SCALE_TRAIN[scale], _SCALE_EVAL[scale]
    sources |= {f"train.{key}": f"{scale} scale" for key in train}
    sources |= {f"eval.{key}": f"{scale} scale" for key in evaluation}
    if data.name != DataConfig().name:
        sources["data.name"] = f"the {domain} domain's default dataset"
    config = RunConfig(
        method=method,
        domain=domain,
        scale=scale,
        agent=agent,
        data=data,
        train=TrainConfig(**train),
        eval=EvalConfig(**evaluation),
    )
    return config, sources


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "c": 2}`` -> ``{"a": {"b": 1}, "c": 2}``."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def config_differences(
    saved: dict[str, Any],
    current: dict[str, Any],
    ignore: typing.Iterable[str] = (),
    shown: int = 6,
) -> str:
    """How a saved configuration (a checkpoint's, a record's) differs from ``current``, as
    ``key: saved -> current, ...``; empty where they agree. The dotted keys in ``ignore`` are left
    out; the top-level fields (scale, method, ...) come first, and at most ``shown`` are listed.

    Fields added to :class:`RunConfig` since ``saved`` was written take their defaults, which keep
    the behaviour from before they existed, so a checkpoint or record of an older zsrl still agrees;
    a field that no longer exists is reported."""
    try:
        saved = RunConfig.from_dict(saved).to_dict()
    except (TypeError, ValueError):
        pass  # an unknown or malformed field: compared as it is, and reported
    ours, theirs = (_flat(json.loads(json.dumps(c))) for c in (saved, current))  # tuples as lists
    skip = set(ignore)
    keys = sorted(set(ours) | set(theirs), key=lambda key: (key.count("."), key))
    diffs = [
        f"{key}: {ours.get(key)!r} -> {theirs.get(key)!r}"
        for key in keys
        if key not in skip and ours.get(key) != theirs.get(key)
    ]
    more = f" and {len(diffs) - shown} more" if len(diffs) > shown else ""
    return ", ".join(diffs[:shown]) + more


def departures(config: RunConfig, section: str = "agent") -> dict[str, Any]:
    """The fields of ``config.<section>`` that differ from its (method, domain, scale) preset.

    What a run changed by ``--set``: ``{"agent.target_heads": "mean"}``. Nested sections are
    flattened with dots.
    """
    base = preset(config.method, config.domain, config.scale).to_dict()[section]
    ours = _flat(config.to_dict()[section], f"{section}.")
    theirs = _flat(base, f"{section}.")
    return {key: value for key, value in ours.items() if theirs.get(key) != value}


def format_config(config: RunConfig) -> str:
    """Every field of ``config``, one ``section.key = value`` line each (the syntax of ``--set``),
    with where each value that is not its class's default comes from: a preset layer's reason, the
    scale, or this command."""
    _, sources = preset_with_sources(config.method, config.domain, config.scale)
    changed = {
        k for section in ("agent", "data", "train", "eval") for k in departures(config, section)
    }
    notes: list[str] = []  # each reason once, as a numbered note
    lines = [
        f"# {config.method} on {config.domain} at {config.scale} scale. A value without a note is",
        "# its class's default (for the agent: the paper's); any line can be passed to --set.",
        f"method = {config.method!r}",
        f"domain = {config.domain!r}",
        f"scale = {config.scale!r}",
    ]
    for section in ("agent", "data", "train", "eval"):
        lines.append("")
        for key, value in _flat(config.to_dict()[section], f"{section}.").items():
            note = "set by this command" if key in changed else sources.get(key)
            if note is not None and note not in notes:
                notes.append(note)
            mark = f"  # [{notes.index(note) + 1}]" if note is not None else ""
            lines.append(f"{key} = {value!r}{mark}")
    lines += ["", *(f"# [{i}] {note}" for i, note in enumerate(notes, 1))]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RunOption:
    """One option of a run, declared once: ``python -m zsrl train --NAME``, the same parameter of
    ``book/run_experiment.ipynb`` and a keyword of :func:`resolve` all come from it."""

    name: str
    field: str | None  # the config field it sets; None for method, domain and scale (the preset)
    kind: type  # int or str
    default: Any
    help: str
    choices: Callable[[], list[str]] | None = None  # the valid values, from their registry
    minimum: int | None = None  # for integers
    many: bool = False  # a list of values (tasks)

    def parse(self, value: Any) -> Any:
        """The typed value of ``value`` as a command line or papermill hands it over ("None", "7",
        "a b"); a bad one is a ValueError naming the option, the value and what is allowed."""
        if value is None or (isinstance(value, str) and value in ("", "None", "none")):
            return None
        if self.many:
            items = value.split() if isinstance(value, str) else list(value)
            return [self._one(item) for item in items]
        return self._one(value)

    def _one(self, value: Any) -> Any:
        if self.kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{self.name} must be a string, got {value!r}")
            return value
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"{self.name} must be an integer, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{self.name} must be an integer, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{self.name} must be at least {self.minimum}, got {value!r}")
        return value


def _methods() -> list[str]:
    from zsrl.methods import method_names

    return method_names()


def _domains() -> list[str]:
    from zsrl.envs import domain_names

    return domain_names()


def _datasets() -> list[str]:
    from zsrl.data import collector_names

    return collector_names()


def _sources() -> list[str]:
    from zsrl.data.sources import source_names

    return source_names()


def _tasks() -> list[str]:
    from zsrl.envs import domain_names, get_domain

    return sorted({task for name in domain_names() for task in get_domain(name).tasks})


def _filters() -> list[str]:
    from zsrl.data import ACTION_FILTERS

    return sorted(ACTION_FILTERS)


RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("method", None, str, "fb", "the algorithm", _methods),
    RunOption("domain", None, str, "point_mass_maze", "the environment", _domains),
    RunOption(
        "scale",
        None,
        str,
        "auto",
        "the preset's size (auto: paper where a GPU is present, book otherwise)",
        lambda: ["auto", *SCALES],
    ),
    RunOption(
        "dataset",
        "data.name",
        str,
        None,
        "the collector (default: the domain's: uniform-reset on the maze, random elsewhere)",
        _datasets,
    ),
    RunOption(
        "data_source",
        "data.source",
        str,
        None,
        "where the data come from: collect (the collector named by --dataset, cached), or a file "
        "reader of --data-path (default: collect)",
        _sources,
    ),
    RunOption("data_path", "data.path", str, None, "the file or directory a file reader reads"),
    RunOption(
        "episodes",
        "data.episodes",
        int,
        None,
        "episodes the collector gathers (default: the collector's, 100k transitions)",
        minimum=1,
    ),
    RunOption("n_transitions", "data.n_transitions", int, None, "subsample to n", minimum=1),
    RunOption("action_filter", "data.action_filter", str, None, "drop actions", _filters),
    RunOption("seed", "train.seed", int, None, "training seed (default: 42)", minimum=0),
    RunOption("steps", "train.steps", int, None, "updates (default: the scale's)", minimum=1),
    RunOption("device", "train.device", str, None, "auto, cpu, cuda or mps (default: auto)"),
    RunOption("threads", "train.threads", int, None, "torch CPU threads", minimum=1),
    RunOption(
        "tasks",
        "eval.tasks",
        str,
        None,
        "default: every task; cql and td3 learn exactly one",
        _tasks,
        many=True,
    ),
)


def run_option(name: str) -> RunOption:
    for option in RUN_OPTIONS:
        if option.name == name:
            return option
    raise ValueError(f"unknown run option {name!r}; valid options: {[o.name for o in RUN_OPTIONS]}")


def resolve_scale(scale: str) -> str:
    """``auto`` is ``paper`` where a GPU is present and ``book`` otherwise; other scales stay."""
    if scale != "auto":
        return scale
    import torch

    return "paper" if torch.cuda.is_available() else "book"


def duration_note(config: RunConfig) -> str | None:
    """A line saying that a run will take a while, for runs of thousands of updates; else None."""
    if config.train.steps < 5_000:
        return None
    where = {"book": "15-45 minutes on one CPU core", "paper": "hours on a GPU, days on a CPU"}
    return (
        f"{config.train.steps:,} updates at {config.scale} scale: about "
        f"{where.get(config.scale, 'minutes or more')} (--scale quick runs in seconds)"
    )


def resolve(
    method: str = "fb",
    domain: str = "point_mass_maze",
    scale: str = "auto",
    overrides: list[str] | tuple[str, ...] = (),
    **options: Any,
) -> RunConfig:
    """The preset for (method, domain, scale) with the run options of :data:`RUN_OPTIONS` set,
    validated.

    This is what ``python -m zsrl train`` and ``book/run_experiment.ipynb`` run: ``overrides``
    (``section.key=value`` strings) apply to the preset first, then every option that is not None,
    so a named option wins over an override of the same field. Options may come as papermill hands
    them over (``"None"``, ``"100000"``, ``"reach_top_left reach_top_right"``). A bad value is a
    ValueError naming it and listing the valid ones.
    """
    method, domain, scale = (
        run_option(k).parse(v)
        for k, v in (("method", method), ("domain", domain), ("scale", scale))
    )
    for item in overrides:  # they choose the preset, which an override would leave as it is
        key = item.split("=", 1)[0].strip()
        if key in ("method", "domain", "scale"):
            raise ValueError(
                f"override {item!r} sets the run's {key}, which chooses its preset: give it as "
                f"--{key} (a notebook parameter, a grid key), not as a setting"
            )
    scale = resolve_scale(scale)
    settings = []
    for name, raw in options.items():
        option = run_option(name)
        if option.field is None:
            raise ValueError(f"option {name!r} is a positional argument of resolve()")
        value = option.parse(raw)
        if value is not None:
            settings.append(f"{option.field}={value!r}")
    cfg = apply_overrides(preset(method, domain, scale), [*overrides, *settings])
    cfg.validate()
    return cfg


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``section.key=value`` strings (values parsed as Python literals, else kept as strings)."""
    import ast

    data = config.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        dotted, raw = item.split("=", 1)
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ValueError(
                    f"unknown config section {dotted!r}; valid sections: {sorted(data)}"
                )
            node = node[part]
        if leaf not in node:
            raise ValueError(f"unknown config key {dotted!r}; valid keys: {sorted(node)}")
        try:
            node[leaf] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            node[leaf] = raw
    return RunConfig.from_dict(data)
