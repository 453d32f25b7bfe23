"""Budgeted selection in real runs: only selected weights move, within the budget."""

import numpy as np
import pytest

from keras_edge import hookimpl
from keras_edge.errors import KerasEdgeError, RecipeError
from keras_edge.recipe import parse_recipe
from keras_edge.runner import run_recipe
from keras_edge_neq.budget import CostModel
from keras_edge_neq.classifier_only import ClassifierOnly
from keras_edge_neq.neq_velocity import NeqVelocity
from keras_edge_neq.neurons import in_scope, neuron_layers
from keras_edge_neq.random_selection import NeqRandom
from keras_edge_neq.sparse_update import SparseUpdate
from keras_edge.testing import tiny_recipe as tiny

PLUGINS = {"neq_velocity": NeqVelocity, "neq_random": NeqRandom, "sparse_update": SparseUpdate,
           "classifier_only": ClassifierOnly}


class WeightWatcher:
    """Per epoch: which weights changed since the epoch began, and the masks then in force."""

    autouse = True

    def __init__(self, selector):
        self.selector, self.epochs = selector, []
        self.uses_options = (selector.name,)

    @hookimpl
    def on_epoch_start(self, ctx):
        self.start = {v.path: v.numpy().copy() for v in ctx.model.trainable_variables}

    @hookimpl
    def on_epoch_end(self, ctx):
        model = ctx.model
        changed = {v.path: v.numpy() != self.start[v.path] for v in model.trainable_variables}
        selected = {v.path: np.broadcast_to(np.asarray(self.selector.masks[v.path]) != 0, v.shape)
                    for v in model.trainable_variables}
        options = ctx.options_of(self, self.selector.name)
        cost_model = CostModel.for_stage(options, ctx.stage)
        layers = in_scope(neuron_layers(model), options.candidates) if options else neuron_layers(model)
        limit = cost_model.limit(options, model, layers) if options else np.inf
        cost = cost_model.selection_cost(model, layers, changed)
        self.epochs.append({"changed": changed, "selected": selected, "cost": cost, "limit": limit})


@pytest.fixture(autouse=True)
def only_neq_plugins(monkeypatch):
    monkeypatch.setenv("KERAS_EDGE_PLUGINS", ",".join(PLUGINS))


def budget_run(name, options, train=None, epochs=3, out=None):
    selector = PLUGINS[name]()
    watcher = WeightWatcher(selector)
    recipe = tiny(train={"epochs": epochs, **(train or {})},
                  plugins={"enable": [name], **({name: options} if options is not None else {})})
    catalog = {n: getattr(cls, "Options", None) for n, cls in PLUGINS.items()} | {"watch": None}
    summary = run_recipe(parse_recipe(recipe, catalog=catalog), out,
                         extra_plugins={name: selector, "watch": watcher})
    return watcher.epochs, summary


CASES = {
    "velocity-sgd": ("neq_velocity", {"budget": 0.3}, {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.05}),
    "velocity-bytes-adam": ("neq_velocity", {"budget": 60000, "budget_unit": "bytes", "accounting": "all",
                                             "candidates": "conv_dense", "velocity_at": "batchnorm",
                                             "rank": "velocity", "fill": "skip", "recurrence": "paper"},
                            {"optimizer": "adam", "weight_decay": 0.05}),
    "velocity-full-first": ("neq_velocity", {"budget": 0.3, "first_selection": "full"}, {}),
    "random-stop": ("neq_random", {"budget": 0.3, "fill": "stop"},
                    {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.1}),
    "sparse_update": ("sparse_update", {"bias_layers": 2, "weight_layers": ["conv2"], "weight_ratios": [0.5],
                                        "budget": 0.5}, {"optimizer": "sgd", "momentum": 0.9}),
    "classifier_only": ("classifier_only", None, {"optimizer": "adam"}),
}
_RUNS = {}


@pytest.fixture
def run_case(tmp_path_factory):
    """Run a case once per test session (several tests read each run)."""
    def run(case):
        if case not in _RUNS:
            out = tmp_path_factory.mktemp(case) if case == "velocity-sgd" else None
            _RUNS[case] = budget_run(*CASES[case], out=out)
        return _RUNS[case]
    return run


@pytest.mark.parametrize("case", [c for c in CASES if c != "velocity-full-first"])
def test_only_selected_weights_change_and_they_fit_the_budget(case, run_case):
    epochs, _ = run_case(case)
    assert len(epochs) == 3
    for epoch in epochs:
        changed, selected = epoch["changed"], epoch["selected"]
        moved = sum(int(c.sum()) for c in changed.values())
        assert moved > 0
        for path in changed:
            assert not (changed[path] & ~selected[path]).any(), f"{path} moved outside the selection"
        # nearly every selected weight does move (a few may have a zero gradient)
        assert moved >= 0.8 * sum(int(s.sum()) for s in selected.values())
        assert epoch["cost"] <= epoch["limit"]


def test_frozen_neurons_stay_put_when_the_selection_changes_under_momentum_and_weight_decay(run_case):
    epochs, _ = run_case("random-stop")
    dropped = 0
    for before, after in zip(epochs, epochs[1:]):
        for path, was in before["selected"].items():
            left = was & ~after["selected"][path]   # selected last epoch, frozen now: momentum is non-zero
            dropped += int(left.sum())
            assert not after["changed"][path][left].any()
    assert dropped > 0


def test_velocity_reselects_every_epoch_and_writes_the_last_selection(run_case):
    epochs, summary = run_case("velocity-sgd")
    masks = [e["selected"] for e in epochs]
    assert any((masks[0][p] != masks[2][p]).any() for p in masks[0])
    with np.load(f"{summary['run_dir']}/selection.npz") as saved:
        assert set(saved.files) == set(masks[-1])
        for path, mask in masks[-1].items():
            assert saved[path].dtype == np.uint8 and saved[path].shape == mask.shape
            np.testing.assert_array_equal(saved[path], mask)
    assert 0 < summary["stages"]["train"]["neq_velocity_fraction"] <= 0.3
    for mask in masks:   # the authors' candidates: convolutions; BatchNorm trains on every channel
        assert not mask["fc/kernel"].any() and not mask["fc/bias"].any()
        assert mask["bn1/gamma"].all() and mask["bn2/beta"].all() and mask["classifier/kernel"].all()


class StatisticsWatcher:
    """BatchNorm moving statistics at the start of the first epoch and at the end of the stage."""

    autouse = True

    @hookimpl
    def on_epoch_start(self, ctx):
        if ctx.epoch == 0:
            self.start = {v.path: v.numpy().copy() for v in ctx.model.non_trainable_variables}

    @hookimpl
    def on_stage_end(self, ctx):
        self.end = {v.path: v.numpy().copy() for v in ctx.model.non_trainable_variables}


@pytest.mark.parametrize("statistics", ["keep", "update"])
def test_frozen_channels_keep_their_batchnorm_statistics_when_asked(statistics):
    selector, watcher = NeqRandom(), StatisticsWatcher()
    recipe = tiny(train={"epochs": 1}, plugins={"enable": ["neq_random"], "neq_random": {
        "budget": 0.3, "frozen_bn_statistics": statistics}})
    run_recipe(parse_recipe(recipe, catalog={"neq_random": NeqRandom.Options, "stats": None}),
               extra_plugins={"neq_random": selector, "stats": watcher})
    for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
        frozen = ~np.asarray(selector.masks[f"{conv}/kernel"], bool).reshape(-1)
        assert frozen.any() and not frozen.all()
        for stat in ("moving_mean", "moving_variance"):
            before, after = watcher.start[f"{bn}/{stat}"], watcher.end[f"{bn}/{stat}"]
            assert (before[~frozen] != after[~frozen]).all()
            assert (before[frozen] == after[frozen]).all() == (statistics == "keep")


def test_full_first_selection_trains_everything_once_then_keeps_the_budget(run_case):
    epochs, _ = run_case("velocity-full-first")
    assert all(s.all() for s in epochs[0]["selected"].values())
    assert all(e["cost"] <= e["limit"] for e in epochs[1:])


def test_a_budget_below_the_classifier_is_a_clear_error():
    with pytest.raises(KerasEdgeError, match="less than the classifier alone needs"):
        budget_run("neq_velocity", {"budget": 20, "budget_unit": "params", "accounting": "all"}, epochs=1)


@pytest.mark.parametrize("options,problem", [
    ({"budget": 1.5}, "must be in \\(0, 1\\]"),
    ({"budget": 0.5, "budget_unit": "params"}, "is not a budget"),
    ({"budget_unit": "kilobytes"}, "choose one of"),
    ({"mu_eq": 1.0}, "mu_eq"),
])
def test_bad_velocity_options_are_recipe_errors(options, problem):
    recipe = tiny(plugins={"enable": ["neq_velocity"], "neq_velocity": options})
    with pytest.raises(RecipeError, match=problem):
        parse_recipe(recipe, catalog={"neq_velocity": NeqVelocity.Options})
