"""The budget: neuron costs, the memory model and the greedy fill."""

import types

import keras
import numpy as np
import pytest

from keras_edge.errors import RecipeError
from keras_edge.models import build_model
from keras_edge.recipe import ModelConfig
from keras_edge_neq.budget import BudgetOptions, CostModel
from keras_edge_neq.fill import candidates, greedy_fill
from keras_edge_neq.neurons import neuron_layers, neuron_masks


def dense_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="classifier")(hidden))


def conv_model():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="classifier")(x))


def masks_for(layers, chosen):
    return neuron_masks(layers, {layer.name: np.isin(np.arange(layer.units), chosen.get(layer.name, []))
                                 for layer in layers})


def test_neurons_own_their_kernel_slice_bias_and_batchnorm_channel():
    layers = neuron_layers(conv_model())
    conv, classifier = layers
    assert (conv.units, conv.fan_in, conv.params_per_neuron) == (3, 18, 20)
    assert conv.gamma.path == "bn/gamma" and conv.output.shape[-1] == 3
    assert classifier.is_classifier and classifier.params_per_neuron == 4
    masks = masks_for(layers, {"conv": [1]})
    assert set(masks) == {"conv/kernel", "bn/gamma", "bn/beta", "classifier/kernel", "classifier/bias"}
    np.testing.assert_array_equal(masks["bn/beta"], [0, 1, 0])


def test_memory_model_matches_a_hand_count():
    model = dense_model()
    layers = neuron_layers(model)
    cost = CostModel("bytes", batch_size=2, optimizer_slots=1, accounting="all")  # 12 B a parameter, 8 a saved value
    masks = masks_for(layers, {"hidden": [0], "classifier": [0, 1]})
    # 13 parameters (5 of one hidden unit, 8 of the classifier); inputs kept: 4 + 3 channels
    assert cost.selection_cost(model, layers, masks) == 13 * 12 + (4 + 3) * 2 * 4
    model = conv_model()
    layers = neuron_layers(model)
    masks = masks_for(layers, {"conv": [0], "classifier": [0, 1]})
    # conv neuron: 18 + 2 params, its 2 input channels x 16 positions, its BN output (16 positions)
    expected = (20 + 8) * 12 + (2 * 16 + 16 + 3) * 2 * 4
    assert cost.selection_cost(model, layers, masks) == expected
    assert CostModel("params", accounting="all").selection_cost(model, layers, masks) == 28
    # the authors' accounting: only the convolution's kernel slice (18), its 2 input channels kept
    conv_cost = CostModel("bytes", batch_size=2, optimizer_slots=1, accounting="conv")
    assert conv_cost.selection_cost(model, layers, masks) == 18 * 12 + 2 * 16 * 2 * 4


@pytest.mark.parametrize("unit,limit,accounting", [("params", 30000, "all"), ("bytes", 400000, "all"),
                                                   ("params", 12000, "conv"), ("bytes", 300000, "conv")])
def test_greedy_fill_accounts_exactly_and_stays_within_the_limit(unit, limit, accounting):
    model = build_model(ModelConfig("mobilenet_v2", 0.35), (16, 16, 1), 10)
    layers = neuron_layers(model)
    cost = CostModel(unit, batch_size=8, optimizer_slots=2, accounting=accounting)
    rng = np.random.default_rng(0)
    for _ in range(3):
        selected = greedy_fill(layers, rng.permutation(len(candidates(layers)[0])), cost, limit, "skip")
        spent = sum(cost.neuron_cost(layer)[0] * selected[layer.name].sum()
                    + cost.neuron_cost(layer)[1] * selected[layer.name].any() for layer in layers)
        masks = neuron_masks(layers, selected)
        assert cost.selection_cost(model, layers, masks) == spent
        assert limit * 0.9 < spent <= limit
        assert all(selected[layer.name].all() for layer in layers if layer.is_classifier)


def test_stop_fill_ends_at_the_first_neuron_that_does_not_fit_and_skip_goes_on():
    model = dense_model()
    layers = neuron_layers(model)
    cost = CostModel("params", accounting="all")
    limit = 2 * 4 + 5  # the classifier and one hidden unit
    order = [0, 1, 2]
    assert greedy_fill(layers, order, cost, limit, "stop")["hidden"].tolist() == [True, False, False]
    assert greedy_fill(layers, order, cost, limit + 4, "stop")["hidden"].tolist() == [True, False, False]
    assert greedy_fill(layers, order, cost, limit + 5, "skip")["hidden"].tolist() == [True, True, False]


def test_a_limit_below_the_classifier_names_the_key_and_the_minimum():
    layers = neuron_layers(dense_model())
    with pytest.raises(RecipeError, match=r"plugins.x.budget: 7 params .* classifier alone needs \(8 params\)"):
        greedy_fill(layers, [], CostModel("params", accounting="all"), 7, where="plugins.x.budget")


def test_cost_model_reads_the_stage_optimizer_and_batch():
    def stage(optimizer, momentum):
        return types.SimpleNamespace(train=types.SimpleNamespace(optimizer=optimizer, momentum=momentum),
                                     data=types.SimpleNamespace(batch_size=16))
    in_bytes = BudgetOptions(budget=1000, budget_unit="bytes")
    assert CostModel.for_stage(in_bytes, stage("adam", 0.9)).bytes_per_param == 16
    assert CostModel.for_stage(in_bytes, stage("sgd", 0.9)).bytes_per_param == 12
    assert CostModel.for_stage(in_bytes, stage("sgd", 0.0)).bytes_per_param == 8
    assert CostModel.for_stage(BudgetOptions(), stage("sgd", 0.0)).unit == "params"
    assert CostModel.for_stage(BudgetOptions(), stage("sgd", 0.0)).accounting == "conv"
    assert CostModel.for_stage(None, stage("sgd", 0.0)).accounting == "all"
