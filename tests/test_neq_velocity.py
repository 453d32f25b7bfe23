"""NEq velocity reproduces a hand-computed example and NEq's cosine conventions."""

import keras
import numpy as np
import pytest

from keras_edge_neq.neurons import neuron_layers
from keras_edge_neq.velocity import VelocityTracker, channel_cosine


def dense_model():
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(2, use_bias=False, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="classifier")(hidden))


def test_velocity_matches_a_hand_computed_example():
    model = dense_model()
    hidden = model.get_layer("hidden")
    body = [layer for layer in neuron_layers(model) if not layer.is_classifier]
    x = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    tracker = VelocityTracker(mu_eq=0.5)

    # epoch 0: W = I, so unit 0 outputs [1, 0, 1] and unit 1 outputs [0, 1, 1]
    hidden.kernel.assign(np.eye(2, dtype=np.float32))
    assert tracker.update(model, body, x) is None
    # epoch 1: unit 0 -> x0 + x1 = [1, 1, 2]; unit 1 unchanged
    hidden.kernel.assign(np.array([[1, 0], [1, 1]], np.float32))
    v1 = tracker.update(model, body, x)["hidden"]
    phi1 = np.array([3 / np.sqrt(12), 1.0])            # cos([1,1,2],[1,0,1]) = 3 / sqrt(6 * 2)
    np.testing.assert_allclose(tracker.phi["hidden"], phi1, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(v1, phi1 - 1.0, rtol=1e-6, atol=1e-9)  # phi_0 = 1, velocity_0 = 0
    # epoch 2: unit 0 unchanged (phi 1); unit 1 -> x0 = [1, 0, 1] against [0, 1, 1] (phi 1/2)
    hidden.kernel.assign(np.array([[1, 1], [1, 0]], np.float32))
    v2 = tracker.update(model, body, x)["hidden"]
    delta = np.array([1.0 - phi1[0], 0.5 - 1.0])
    np.testing.assert_allclose(v2, delta - 0.5 * v1, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(v2, [1.5 * (1 - np.sqrt(3) / 2), -0.5], rtol=1e-6, atol=1e-9)


def test_channel_cosine_is_per_sample_map_for_convolutions_with_reference_zero_rules():
    before = np.zeros((2, 2, 2, 3), np.float32)
    now = np.zeros_like(before)
    before[0, :, :, 0], now[0, :, :, 0] = [[1, 0], [0, 0]], [[0, 1], [0, 0]]  # orthogonal: 0
    before[1, :, :, 0], now[1, :, :, 0] = [[1, 2], [3, 4]], [[2, 4], [6, 8]]  # same direction: 1
    now[:, 0, 0, 1] = 5.0                                                       # zero before: 0
    # channel 2 is zero in both: counts as unchanged (1)
    np.testing.assert_allclose(channel_cosine(now, before), [0.5, 0.0, 1.0])


def test_depthwise_neurons_average_their_multiplier_outputs():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.DepthwiseConv2D(1, depth_multiplier=2, use_bias=False, name="dw")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="classifier")(keras.layers.Flatten()(x)))
    body = [layer for layer in neuron_layers(model) if not layer.is_classifier]
    assert body[0].units == 2 and body[0].multiplier == 2
    tracker = VelocityTracker()
    images = np.random.default_rng(0).random((3, 4, 4, 2)).astype(np.float32)
    tracker.update(model, body, images)
    kernel = body[0].kernel
    flipped = np.asarray(kernel).copy()
    flipped[..., 0, 0] *= -1  # channel 0, first output: cosine -1; second output unchanged: 1
    kernel.assign(flipped)
    velocity = tracker.update(model, body, images)["dw"]
    np.testing.assert_allclose(velocity, [(-1 + 1) / 2 - 1, 0.0], atol=1e-6)


@pytest.mark.parametrize("mu_eq", [0.0, 0.9])
def test_unchanged_model_has_zero_velocity(mu_eq):
    model = dense_model()
    body = [layer for layer in neuron_layers(model) if not layer.is_classifier]
    tracker = VelocityTracker(mu_eq)
    x = np.random.default_rng(1).random((5, 2)).astype(np.float32)
    tracker.update(model, body, x)
    np.testing.assert_allclose(tracker.update(model, body, x)["hidden"], 0.0, atol=1e-6)
