"""A tiny supernet trains a few steps under each once-for-all plugin, then is evaluated and searched."""

import json

import numpy as np
import pytest

from keras_edge import hookimpl
from keras_edge.plugins import plugin_catalog
from keras_edge.recipe import parse_recipe
from keras_edge.runner import run_recipe
from keras_edge.testing import tiny_recipe as tiny

MODEL = {"name": "elastic_mobilenet",
         "options": {"stage_widths": [8], "stage_strides": [2], "stage_activations": ["hard_swish"],
                     "head_width": 16, "depths": [1, 2], "kernels": [3, 5], "expands": [2, 3]}}


class TransformSpy:
    """Records after each epoch whether every kernel-transformation matrix is still the identity."""

    def __init__(self):
        self.identity = []

    @hookimpl
    def on_epoch_end(self, ctx):
        transforms = [v.numpy() for v in ctx.model.trainable_variables if "transform" in v.path]
        self.identity.append(all(np.array_equal(t, np.eye(len(t))) for t in transforms))


def train(tmp_path, plugins, stages=None, spy=None, epochs=2):
    raw = tiny(model=MODEL, plugins=plugins, train={"epochs": epochs, "optimizer": "sgd", "learning_rate": 0.05})
    if stages:
        raw["stages"] = stages
    extra = {"spy": spy} if spy else None
    recipe = parse_recipe(raw, catalog={**plugin_catalog(), **({"spy": None} if spy else {})})
    summary = run_recipe(recipe, tmp_path / "run", extra_plugins=extra)
    return summary, (tmp_path / "run" / "metrics.csv").read_text().splitlines()


def column(rows, name):
    header = rows[0].split(",")
    return [float(row.split(",")[header.index(name)] or "nan") for row in rows[1:]]


def test_deps_warms_up_the_full_model_then_shrinks(tmp_path):
    spy = TransformSpy()
    summary, rows = train(tmp_path, {"enable": ["deps", "spy"],
                                     "deps": {"warmup_fraction": 0.5, "num_subnets": 2, "epsilon_epochs": 0.5,
                                              "epsilon_min_steps": 0}}, spy=spy)
    assert column(rows, "deps_epsilon") == [0.0, 1.0]
    assert spy.identity == [True, False]  # smaller kernels (subnets only) start training when shrinking starts
    assert np.isfinite(summary["test_loss"]) and summary["train_macs"] > 0


def test_bignas_trains_subnets_from_the_first_epoch(tmp_path):
    spy = TransformSpy()
    summary, _ = train(tmp_path, {"enable": ["bignas", "spy"], "bignas": {"num_subnets": 2}}, spy=spy, epochs=1)
    assert spy.identity == [False] and np.isfinite(summary["test_loss"])


def test_ofa_progressive_shrinking_distils_from_the_full_model(tmp_path):
    stages = [{"name": "full", "epochs": 1, "options": {"ofa": {"phase": "full"}}},
              {"name": "expand", "epochs": 1, "train": {"learning_rate": 0.01},
               "options": {"ofa": {"phase": "expand", "num_subnets": 2}}}]
    summary, rows = train(tmp_path, {"enable": ["ofa"]}, stages)
    kd = column(rows, "ofa_kd")
    assert np.isnan(kd[0]) and kd[1] > 0  # the KD term appears in the shrinking stage only
    assert summary["ofa_teacher_macs"] > 0 and list(summary["stages"]) == ["full", "expand"]


@pytest.mark.slow
def test_evaluate_subnets_and_search_on_a_trained_run(tmp_path):
    from click.testing import CliRunner

    from keras_edge.evaluation import evaluate_run
    from keras_edge_deps.plugin import search_command

    train(tmp_path, {"enable": ["bignas"], "bignas": {"num_subnets": 2}, "supernet": {"num_samples": 4}})
    run = tmp_path / "run"
    report = evaluate_run(run, flags={"subnets": True})["subnets"]
    assert report["num_evaluated"] == 6 and (run / "pareto.png").exists()
    result = CliRunner().invoke(search_command, [str(run), "--max-macs", str(report["largest"]["macs"] - 1),
                                      "--population", "4", "--generations", "2"])
    assert result.exit_code == 0, result.output
    found = json.loads((run / "search" / "subnet.json").read_text())
    assert found["macs"] < report["largest"]["macs"] and (run / "search" / "subnet.keras").exists()
