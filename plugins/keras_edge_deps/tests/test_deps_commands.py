"""Every command the once-for-all recipes and the DεpS card suggest: search budgets fit their supernet,
and the quick recipes' commands run (on a tiny supernet and a few hundred images)."""

import re
import shlex
from pathlib import Path

import pytest

from keras_edge.cli import main
from keras_edge.models import build_model
from keras_edge.recipe import load_recipe
from keras_edge_deps.supernet import elastic_mobilenet

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ["recipes/deps_quick.toml", "recipes/bignas_quick.toml", "recipes/deps.toml", "recipes/bignas.toml",
           "recipes/ofa.toml", "plugins/keras_edge_deps/README.md"]
TINY = ["--set", "data.limit=300", "--set", "data.test_limit=100", "--set", "train.epochs=2",
        "--set", "model.options.stage_widths=[8]", "--set", "model.options.stage_strides=[2]",
        "--set", 'model.options.stage_activations=["hard_swish"]', "--set", "model.options.head_width=16",
        "--set", "model.options.depths=[1, 2]", "--set", "model.options.kernels=[3, 5]",
        "--set", "model.options.expands=[2, 3]", "--set", "plugins.supernet.num_samples=3"]


def suggested(source: str) -> list[str]:
    """The ``keras-edge ...`` commands written in a recipe's comments or the card's code blocks."""
    found = []
    for line in (ROOT / source).read_text().splitlines():
        found += [c.strip() for c in re.findall(r"keras-edge [^;#`|\n]+", line)
                  if "RUN" not in c and not c.strip().endswith("...")]  # usage patterns are not suggestions
    return found


def test_every_search_budget_lies_inside_its_supernets_macs_range():
    budgets = [c for s in SOURCES for c in suggested(s) if "--max-macs" in c]
    assert budgets
    for command in budgets:
        args = shlex.split(command)
        name = Path(args[2]).name
        budget = int(args[args.index("--max-macs") + 1])
        recipe = load_recipe(ROOT / "recipes" / f"{name}.toml")
        model = build_model(recipe.model, (28, 28, 1), 10, {"elastic_mobilenet": elastic_mobilenet})
        assert model.subnet_macs(model.space.smallest()) <= budget < model.subnet_macs(None), command


def test_the_quick_recipes_suggested_commands_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    outputs = {}
    for name in ("deps_quick", "bignas_quick"):
        epochs = ["--set", "train.epochs=1"] if name == "bignas_quick" else []
        commands = [f"keras-edge run recipes/{name}.toml --out runs/{name}"] + suggested(f"recipes/{name}.toml")
        for command in commands:
            args = shlex.split(command)[1:]
            if args[0] == "run":
                args += TINY + epochs
            try:
                main(args)
            except SystemExit as exc:
                pytest.fail(f"{command}: exit {exc.code}\n{capsys.readouterr().err}")
            outputs[command] = capsys.readouterr().out
    run_line = outputs["keras-edge run recipes/deps_quick.toml --out runs/deps_quick"]
    assert "smallest subnet" in run_line and "BatchNorm recalibrated" in run_line
    assert "mean Pareto accuracy" in outputs["keras-edge evaluate runs/deps_quick --subnets"]
    assert (tmp_path / "runs/deps_quick/search/subnet.keras").exists() and (tmp_path / "pareto.png").exists()


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_suggests_commands(source):
    assert suggested(source)
