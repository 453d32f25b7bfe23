"""The authors' accounting: hand-counted budgets, the classifier outside the budget, the
``stop`` rule, convolution-only candidates and their ranking by |velocity| / cost."""

import keras
import numpy as np

from keras_edge_neq.budget import BudgetOptions, CostModel
from keras_edge_neq.fill import candidates, greedy_fill
from keras_edge_neq.neq_velocity import rank_scores
from keras_edge_neq.neurons import in_scope, neuron_layers, neuron_masks


def tiny_conv_model():
    """conv_a: 3 neurons of 3x3x2 + bias (19 each); conv_b: 4 neurons of 1x1x3, no bias (3
    each); BatchNorm after both; a hidden dense layer of 2 units; a classifier of 2 units."""
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Conv2D(4, 1, use_bias=False, name="conv_b")(keras.layers.ReLU()(x))
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.Dense(2, name="hidden")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, keras.layers.Dense(2, name="classifier")(x))


def test_budget_denominators_and_limits_match_a_hand_count():
    model = tiny_conv_model()
    layers = neuron_layers(model)
    conv = in_scope(layers, "conv")
    assert [layer.name for layer in conv] == ["conv_a", "conv_b", "classifier"]
    assert [layer.own_params_per_neuron for layer in conv[:2]] == [19, 3]
    # authors: kernels and biases of the convolutions only: 3 x 19 + 4 x 3
    assert CostModel(accounting="conv").denominator(model, conv) == 69
    assert CostModel(accounting="conv").limit(BudgetOptions(budget=0.5), model, conv) == 34   # int(34.5)
    # with the hidden dense layer as a candidate: + 4 x 2 + 2
    assert CostModel(accounting="conv").denominator(model, in_scope(layers, "conv_dense")) == 79
    # every trainable parameter: 57 + 6 (bn_a) + 12 + 8 (bn_b) + 10 (hidden) + 6 (classifier)
    assert CostModel(accounting="all").denominator(model, layers) == 99
    assert CostModel(accounting="all").limit(BudgetOptions(budget=0.5, accounting="all"), model, layers) == 49


def test_the_classifier_trains_outside_the_budget():
    model = tiny_conv_model()
    conv = in_scope(neuron_layers(model), "conv")
    selected = greedy_fill(conv, [], CostModel(accounting="conv"), limit=0)
    assert selected["classifier"].all() and not selected["conv_a"].any() and not selected["conv_b"].any()
    masks = neuron_masks(conv, selected)
    assert CostModel(accounting="conv").selection_cost(model, conv, masks) == 0
    assert CostModel(accounting="all").selection_cost(model, conv, masks) == 6


def test_stop_ends_at_the_first_neuron_that_does_not_fit_and_skip_goes_on():
    model = tiny_conv_model()
    conv = in_scope(neuron_layers(model), "conv")
    cost = CostModel(accounting="conv")
    order = [0, 3, 1, 4, 5]   # conv_a[0] (19), conv_b[0] (3), conv_a[1] (19: 41 > 34), conv_b[1], conv_b[2]
    stop = greedy_fill(conv, order, cost, 34, "stop")
    assert stop["conv_a"].tolist() == [True, False, False] and stop["conv_b"].tolist() == [True, False, False, False]
    skip = greedy_fill(conv, order, cost, 34, "skip")
    assert skip["conv_a"].tolist() == [True, False, False] and skip["conv_b"].tolist() == [True, True, True, False]
    assert cost.selection_cost(model, conv, neuron_masks(conv, stop)) == 22
    assert cost.selection_cost(model, conv, neuron_masks(conv, skip)) == 28


def authors_velocity_selection(velocities, costs, budget):
    """Transcription of the authors' ``_compute_velocity_budget_mask`` for one flat list of
    neurons (``hooks.py`` divides each velocity by its neuron's parameter count first):
    returns the updated neurons (those faster than the first one that does not fit)."""
    per_cost = np.abs(velocities / costs)
    order = np.argsort(-per_cost, kind="stable")
    new_sum, index = 0.0, 0
    while index < len(order) and new_sum + costs[order[index]] <= budget:
        new_sum += costs[order[index]]
        index += 1
    updated = np.zeros(len(costs), bool)
    updated[order[:index]] = True
    return updated


def test_ranking_and_fill_match_the_authors_selection():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, name="c1")(inputs)
    x = keras.layers.Conv2D(12, 1, name="c2")(x)
    x = keras.layers.DepthwiseConv2D(3, use_bias=False, name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="classifier")(x))
    layers = in_scope(neuron_layers(model), "conv")
    cost = CostModel(accounting="conv")
    costs = np.array([cost.neuron_cost(layers[i])[0] for i in candidates(layers)[0]])
    rng = np.random.default_rng(0)
    for budget in (40.0, 150.0, 300.0):
        velocity = {layer.name: rng.normal(size=layer.units) for layer in layers if not layer.is_classifier}
        order = np.argsort(-rank_scores(layers, velocity, cost, "velocity_per_cost"), kind="stable")
        mine = greedy_fill(layers, order, cost, budget, "stop")
        flat = np.concatenate([mine[layer.name] for layer in layers if not layer.is_classifier])
        expected = authors_velocity_selection(np.concatenate(list(velocity.values())), costs, budget)
        np.testing.assert_array_equal(flat, expected)
        assert 0 < flat.sum() < len(flat)


def test_dense_and_conv_velocities_are_normalised_per_kind_before_ranking():
    layers = in_scope(neuron_layers(tiny_conv_model()), "conv_dense")
    velocity = {"conv_a": np.array([0.1, 0.2, 0.3]), "conv_b": np.array([0.2, 0.2, 0.2, 0.1]),
                "hidden": np.array([50.0, 150.0])}
    score = rank_scores(layers, velocity, CostModel(accounting="conv"), "velocity")
    conv, dense = score[:7], score[7:]
    np.testing.assert_allclose(conv.mean(), 1.0)
    np.testing.assert_allclose(dense, [0.5, 1.5])   # without normalisation both dense units would lead
