"""The method registry: declarations, presets with their reasons, and a new method added from outside."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from zsrl.agents import FBAgent
from zsrl.cli import main
from zsrl.config import FBConfig, apply_overrides, format_config, preset, preset_with_sources
from zsrl.methods import Method, Preset, get_method, method_names, register, unregister
from zsrl.methods.fb import FORWARD_ACTOR_PRESETS
from zsrl.model import FBModel
from zsrl.train import Trainer


def test_every_built_in_method_declares_itself():
    assert method_names() == ["fb", "vcfb", "mcfb", "dvcfb", "sf-lap", "gciql", "cql", "td3"]
    assert method_names("fb") == ["fb", "vcfb", "mcfb", "dvcfb"]
    labels = [get_method(m).label for m in method_names()]
    assert len(set(labels)) == len(labels)
    assert [m for m in method_names() if get_method(m).single_task] == ["cql", "td3"]
    assert [m for m in method_names() if get_method(m).q_context_dim is None] == ["gciql"]
    assert [m for m in method_names() if get_method(m).conservative] == ["vcfb", "mcfb", "dvcfb"]
    for name in method_names():
        spec = get_method(name)
        assert type(preset(name, "point_mass_maze", "quick").agent) is spec.config
        assert not spec.single_task or "rewards" in spec.needs


def test_registry_errors_name_the_value_and_the_choices():
    with pytest.raises(ValueError, match=r"unknown method 'fbb'; valid choices: \['fb', 'vcfb'"):
        get_method("fbb")
    with pytest.raises(ValueError, match="'fb' is already registered"):
        register(get_method("fb"))
    with pytest.raises(
        ValueError, match=r"unknown family 'x'; valid choices: \['fb', 'baseline'\]"
    ):
        Method("x", "X", FBConfig, lambda *a: None, family="x")
    with pytest.raises(ValueError, match=r"unknown data needs \['goals'\]"):
        Method("x", "X", FBConfig, lambda *a: None, needs=frozenset({"goals"}))


def test_presets_say_where_each_value_comes_from():
    cfg, sources = preset_with_sources("vcfb", "point_mass_maze", "book")
    assert cfg.agent.discount == 0.995 and sources["agent.discount"].startswith("book maze")
    assert cfg.agent.conservative.penalty_states == 0.25
    assert sources["agent.conservative.penalty_states"].startswith("book scale")
    assert sources["train.steps"] == "book scale"
    assert "agent.ortho_coefficient" not in sources  # the paper's value: no reason needed
    paper, paper_sources = preset_with_sources("fb", "point_mass_maze", "paper")
    assert paper.agent.discount == 0.99 and set(paper_sources) == {
        "agent.z_dim",
        "agent.discount",
        *(f"train.{k}" for k in ("steps", "eval_every", "log_every", "checkpoint_every")),
        "eval.episodes",
    }


@pytest.mark.parametrize("method", ["vcfb", "cql"])
def test_every_printed_line_passes_to_set_and_gives_the_same_config(method):
    cfg = preset(method, "point_mass_maze", "book")
    cfg = apply_overrides(cfg, ["agent.discount=0.9", "eval.tasks=['reach_top_left']"])
    text = format_config(cfg)
    assert "agent.discount = 0.9  # [" in text
    settings = [
        line.split("  #")[0].replace(" = ", "=", 1)
        for line in text.splitlines()
        if "." in line.split(" = ")[0] and not line.startswith("#")
    ]
    assert len(settings) > 30
    assert apply_overrides(preset(method, "point_mass_maze", "book"), settings) == cfg
    assert any(line.endswith("set by this command") for line in text.splitlines())


def test_config_command_prints_a_resolved_preset(capsys):
    assert main(["config", "--method", "mcfb", "--scale", "quick", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "method = 'mcfb'" in out and "train.seed = 3  # [" in out
    assert "agent.lr_actor = 3e-05  # [" in out and "conservative variants" in out
    assert main(["config", "--method", "mcfbb"]) == 2
    assert "unknown method 'mcfbb'; valid choices" in capsys.readouterr().err


# ---------------------------------------------------------------- a method added from outside
@dataclass
class ToyConfig(FBConfig):
    """FB's settings and one more: a method the registry did not know, declared by this test."""

    note: str = "toy"


class ToyAgent(FBAgent):
    """FB's update under another name: what matters here is that nothing in zsrl names it."""


@pytest.fixture
def toy():
    quick = FORWARD_ACTOR_PRESETS[2]
    spec = register(
        Method(
            name="toy",
            label="Toy",
            config=ToyConfig,
            build=lambda cfg, o, a, device: ToyAgent(FBModel(o, a, cfg).to(device), cfg),
            presets=(
                Preset(quick.values | dict(backward_hidden=16), "toy's quick sizes", "quick"),
            ),
            q_context_dim=lambda cfg: cfg.z_dim,
        )
    )
    yield spec
    unregister("toy")


def test_a_method_registered_from_outside_trains_and_resolves(toy, tmp_path, capsys):
    settings = ["data.episodes=200", "train.steps=20", "train.eval_every=10", "eval.episodes=1"]
    settings += ["train.log_every=10", "train.checkpoint_every=10"]
    cfg = apply_overrides(preset("toy", "point_mass_maze", "quick"), settings)
    assert type(cfg.agent) is ToyConfig and cfg.agent.backward_hidden == 16
    record = Trainer(cfg, tmp_path / "run", data_root=tmp_path / "data", progress=False).run()
    assert record["complete"] and record["method"] == "toy"
    assert json.loads((tmp_path / "run" / "record.json").read_text())["config"]["agent"]["note"]
    assert main(["config", "--method", "toy", "--scale", "quick"]) == 0
    assert "agent.backward_hidden = 16  # [" in capsys.readouterr().out
