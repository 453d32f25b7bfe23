"""GEARnn plugins in the loop: grow to a target on clean data, then ERA with JSD, then evaluate."""

import json

import pytest

from keras_edge.evaluation import evaluate_run
from keras_edge.models import count_params, vgg
from keras_edge.recipe import parse_recipe
from keras_edge.runner import run_recipe
from keras_edge.testing import tiny_recipe as tiny

TARGET = 6000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gearnn") / "run"
    recipe = parse_recipe(tiny(
        model={"name": "vgg", "width": 0.125},
        train={"jit_compile": False},  # XLA compilation would dominate so short a run
        stages=[{"name": "grow", "epochs": 1, "plugins": ["osg"]},
                {"name": "robust", "epochs": 1, "plugins": ["era"]}],
        plugins={"osg": {"target_params": TARGET, "grow_after": 1, "candidates": 2, "examples": 32},
                 "era": {"views": 3, "width": 1, "depth": 2},
                 "corruptions": {"examples": 16, "batch_size": 16}},
    ))
    return run_recipe(recipe, out)


def test_growth_reaches_the_target_and_era_adds_its_loss(run):
    start = count_params(vgg((12, 12, 1), 4, width=0.125))
    assert start < run["params"] <= TARGET
    assert run["stages"]["grow"]["osg_params"] == run["params"]
    rows = list(open(f"{run['run_dir']}/metrics.csv"))
    header = rows[0].strip().split(",")
    robust = dict(zip(header, rows[-1].strip().split(",")))
    assert robust["stage"] == "robust" and float(robust["jsd"]) > 0


def test_evaluate_with_corruptions_writes_the_table(run, monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_EDGE_CACHE", str(tmp_path))
    report = evaluate_run(run["run_dir"], flags={"corruptions": True})
    assert 0 <= report["mean_corruption_accuracy"] <= 1
    saved = json.loads(open(f"{run['run_dir']}/corruptions.json").read())
    assert len(saved["accuracy"]) == 15 and all(len(row) == 5 for row in saved["accuracy"].values())
