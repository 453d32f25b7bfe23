"""Sparse Update schemes, and the search that finds one for a budget."""

import itertools
import types

import click
import keras
import numpy as np
import pytest

from keras_edge.errors import RecipeError
from keras_edge.recipe import parse_recipe
from keras_edge_neq.budget import CostModel
from keras_edge_neq.neurons import neuron_layers
from keras_edge_neq.search import Contributions, contribution_analysis, evolve_scheme
from keras_edge_neq.sparse_update import SchemeOptions, SparseUpdate, scheme_masks
from keras_edge.testing import tiny_recipe as tiny


def model_with_known_weights():
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(3, 1, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(5, 1, name="conv_b")(keras.layers.ReLU()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="classifier")(x))
    kernel = np.zeros((1, 1, 4, 3), np.float32)
    kernel[0, 0] = [[1, 1, 1], [5, 0, 0], [0, 0, 0.5], [0, 3, 3]]   # input-channel norms: 1.7, 5, 0.5, 4.2
    model.get_layer("conv").kernel.assign(kernel)
    return model


def test_scheme_updates_biases_of_last_layers_and_the_strongest_input_channels():
    model = model_with_known_weights()
    layers = neuron_layers(model)
    masks = scheme_masks(layers, SchemeOptions(bias_layers=2, weight_layers=("conv",), weight_ratios=(0.5,)))
    assert set(masks) == {"classifier/kernel", "classifier/bias", "conv_b/bias", "bn/beta", "conv/kernel"}
    np.testing.assert_array_equal(masks["conv/kernel"].reshape(-1), [0, 1, 0, 1])   # channels 1 and 3
    assert masks["conv/kernel"].shape == (1, 1, 4, 1)
    # all counted: classifier 12, conv_b bias 5, bn beta 3, conv kernel 2 input channels x 3 outputs
    assert CostModel("params", accounting="all").selection_cost(model, layers, masks) == 12 + 5 + 3 + 6
    # the authors' accounting: convolution kernels and biases only
    assert CostModel("params", accounting="conv").selection_cost(model, layers, masks) == 5 + 6


@pytest.mark.parametrize("options,problem", [
    ({"weight_layers": ["nope"], "weight_ratios": [1.0]}, "unknown layers \\['nope'\\]"),
    ({"bias_layers": 3}, "more than the model's 2 layers"),
])
def test_scheme_errors_name_the_key_and_the_choices(options, problem):
    with pytest.raises(RecipeError, match=problem):
        scheme_masks(neuron_layers(model_with_known_weights()), SchemeOptions(**options))


@pytest.mark.parametrize("options,problem", [
    ({"weight_layers": ["conv1"], "weight_ratios": []}, "one ratio per weight layer"),
    ({"weight_layers": ["conv1"], "weight_ratios": [0]}, "must all be in \\(0, 1\\]"),
    ({"bias_layers": -1}, "negative"),
])
def test_bad_scheme_options_are_recipe_errors(options, problem):
    recipe = tiny(plugins={"enable": ["sparse_update"], "sparse_update": options})
    with pytest.raises(RecipeError, match=problem):
        parse_recipe(recipe, catalog={"sparse_update": SparseUpdate.Options})


def test_evolutionary_search_finds_the_best_scheme_that_fits():
    model = model_with_known_weights()
    stage = types.SimpleNamespace(train=types.SimpleNamespace(optimizer="sgd", momentum=0.0),
                                  data=types.SimpleNamespace(batch_size=4))
    contrib = Contributions(layers=["conv", "conv_b"], baseline=0.5, bias=[0.0, 0.02, 0.03],
                            weight={"conv": {0.5: 0.04, 1.0: 0.05}, "conv_b": {0.5: 0.06, 1.0: 0.10}},
                            model=model, stage=stage)
    layers = neuron_layers(model)
    for budget in (25, 30, 45, 60):
        found = evolve_scheme(contrib, SchemeOptions(budget=budget, budget_unit="params", accounting="all"))
        best = -1.0
        for k, a, b in itertools.product(range(3), (0, 0.5, 1.0), (0, 0.5, 1.0)):
            chosen = [(n, r) for n, r in (("conv", a), ("conv_b", b)) if r]
            scheme = SchemeOptions(bias_layers=k, weight_layers=tuple(n for n, _ in chosen),
                                   weight_ratios=tuple(r for _, r in chosen))
            if CostModel("params", accounting="all").selection_cost(model, layers,
                                                                    scheme_masks(layers, scheme)) <= budget:
                best = max(best, contrib.bias[k] + sum(contrib.weight[n][r] for n, r in chosen))
        assert found["predicted_gain"] == pytest.approx(best)
    with pytest.raises(RecipeError, match="classifier alone"):
        evolve_scheme(contrib, SchemeOptions(budget=5, budget_unit="params", accounting="all"))


def test_search_is_a_command_and_needs_a_fine_tuning_stage():
    group = click.Group()
    SparseUpdate().register_commands(cli=group)
    assert "neq-search" in group.commands
    with pytest.raises(RecipeError, match="needs a pretraining stage and a fine-tuning stage"):
        contribution_analysis(parse_recipe(tiny(), catalog={"sparse_update": SparseUpdate.Options}))


@pytest.mark.slow
def test_contribution_analysis_trains_each_candidate_on_the_last_stage(cache_dir, monkeypatch):
    monkeypatch.setenv("KERAS_EDGE_PLUGINS", "sparse_update")
    recipe = parse_recipe(tiny(train={"epochs": 1}, stages=[
        {"name": "pretrain", "cache": True},
        {"name": "finetune", "data": {"synthetic_classes": 3, "seed": 1}},
    ]))
    contrib = contribution_analysis(recipe, epochs=1, ratios=(1.0,), max_layers=1)
    assert contrib.layers == ["conv2"]   # convolutions only: the authors' candidates
    assert len(contrib.bias) == 2 and list(contrib.weight["conv2"]) == [1.0]
    assert 0.0 <= contrib.baseline <= 1.0
    assert contrib.model.output_shape[-1] == 3
