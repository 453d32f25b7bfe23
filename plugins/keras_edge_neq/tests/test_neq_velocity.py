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


class AuthorsHook:
    """Transcription of the velocity state of the authors' ``Hook`` (``NEq/core/utils/hooks.py``):
    ``delta_buffer`` starts at 0, ``get_velocity`` adds the delta of deltas in place and is what
    gets ranked, ``update_velocity`` then applies the momentum and subtracts it again."""

    def __init__(self, momentum):
        self.momentum, self.delta_buffer, self.velocity = momentum, 0.0, 0.0

    def epoch(self, phi):
        reduced_delta = 1.0 - phi                       # get_reduced_activation_delta
        delta_of_delta = self.delta_buffer - reduced_delta
        self.velocity = self.velocity + delta_of_delta  # get_velocity (ranked)
        ranked = self.velocity
        self.velocity = self.velocity * self.momentum - delta_of_delta   # update_velocity
        self.delta_buffer = reduced_delta               # update_delta_buffer
        return ranked


@pytest.mark.parametrize("mu_eq", [0.0, 0.5, 0.9])
def test_code_recurrence_reproduces_the_authors_hook(mu_eq):
    phis = np.random.default_rng(2).uniform(0.3, 1.0, size=(6, 4))
    tracker, hook = VelocityTracker(mu_eq, "code"), AuthorsHook(mu_eq)
    stored, previous = 0.0, 1.0
    for phi in phis:
        ranked, stored = tracker.step(phi - previous, stored)
        previous = phi
        np.testing.assert_allclose(ranked, hook.epoch(phi), atol=1e-12)


def velocities(recurrence, mu_eq, deltas):
    tracker, stored, out = VelocityTracker(mu_eq, recurrence), 0.0, []
    for delta in deltas:
        ranked, stored = tracker.step(delta, stored)
        out.append(ranked)
    return np.array(out)


@pytest.mark.parametrize("mu_eq", [0.0, 0.3, 0.5, 0.9])
def test_paper_and_code_recurrences_agree_where_they_should(mu_eq):
    deltas = np.array([-0.2, 0.1, -0.05, 0.1])
    code, paper = velocities("code", mu_eq, deltas), velocities("paper", mu_eq, deltas)
    assert code[0] == paper[0] == deltas[0]                   # first velocity: delta_phi_1 in both
    second_agrees = np.isclose(code[1], paper[1])
    assert second_agrees == (mu_eq == 0.5)                    # -(1 - mu) delta_1 against -mu delta_1
    assert not np.isclose(code[2], paper[2])                  # from the third on they differ
    np.testing.assert_allclose(paper[2], deltas[2] - mu_eq * deltas[1] + mu_eq ** 2 * deltas[0])


def test_velocity_is_measured_before_batchnorm_by_default():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 1, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="classifier")(keras.layers.Flatten()(x)))
    body = [layer for layer in neuron_layers(model) if not layer.is_classifier]
    images = np.random.default_rng(3).random((4, 4, 4, 2)).astype(np.float32)
    before, after = VelocityTracker(at="layer"), VelocityTracker(at="batchnorm")
    before.update(model, body, images), after.update(model, body, images)
    model.get_layer("bn").beta.assign([1.0, -2.0, 3.0])      # only the BatchNorm changes
    np.testing.assert_allclose(before.update(model, body, images)["conv"], 0.0, atol=1e-6)
    assert (np.abs(after.update(model, body, images)["conv"]) > 1e-3).all()
