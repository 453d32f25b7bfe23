"""DεpS fidelity: channel reorganisation, the ε ramp at short lengths, the bucket Pareto metric,
no weight decay on BatchNorm parameters and biases."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_edge.optim import make_optimizer
from keras_edge.recipe import TrainConfig
from keras_edge_deps import deps
from keras_edge_deps.pareto import bucket_pareto_accuracy
from keras_edge_deps.reorganize import channel_order, reorganize, segment_boundaries
from keras_edge_deps.subnets import kept_statistics
from keras_edge_deps.supernet import ElasticMobileNet


@pytest.fixture(scope="module")
def supernet():
    keras.utils.set_random_seed(3)
    model = ElasticMobileNet((12, 12, 1), 4, stage_widths=[8, 16], stage_strides=[2, 1],
                             stage_activations=["relu", "hard_swish"], head_width=16, depths=[1, 2],
                             kernels=[3, 5], expands=[2, 3, 4])
    rng = np.random.default_rng(1)
    for var in model.variables:  # BatchNorm parameters and statistics other than 0 / 1
        low, high = {"moving_mean": (-0.2, 0.2), "beta": (-0.2, 0.2)}.get(var.name, (0.5, 1.5))
        if var.name in ("gamma", "beta", "moving_mean", "moving_variance"):
            var.assign(rng.uniform(low, high, var.shape).astype(np.float32))
    return model


def test_reorganisation_keeps_the_full_model_and_sorts_by_importance(supernet):
    images = tf.constant(np.random.default_rng(0).random((6, 12, 12, 1), np.float32))
    def outputs():  # training mode (batch statistics, moving ones restored) and inference
        with kept_statistics(supernet):
            train = supernet(images, training=True).numpy()
        return train, supernet(images, training=False).numpy()

    before = outputs()
    moved = reorganize(supernet)
    after = outputs()
    assert moved > 0 and np.ptp(before[1], axis=0).max() > 1e-4  # outputs depend on the input
    np.testing.assert_allclose(after[0], before[0], rtol=1e-4, atol=2e-6)
    np.testing.assert_allclose(after[1], before[1], rtol=1e-4, atol=2e-6)
    block = supernet.blocks[0][0]
    importance = np.abs(block.project_kernel.numpy()).sum(axis=(0, 1, 3))
    cut = block.in_channels * 3  # expands {2, 3, 4}: the first 3 * in stay apart from the rest
    assert np.all(np.diff(importance[:cut]) <= 0) and np.all(np.diff(importance[cut:]) <= 0)
    assert reorganize(supernet) == 0  # sorting again changes nothing


def test_channel_order_respects_boundaries_and_the_reference_stages():
    assert channel_order([1, 3, 2, 5, 4, 0]).tolist() == [3, 4, 1, 2, 0, 5]
    assert channel_order([1, 3, 2, 5, 4, 0], boundaries=(3,)).tolist() == [1, 2, 0, 3, 4, 5]
    assert segment_boundaries(16, (3, 4, 6)) == (64,)  # reference expand_ratio_stage 1: [0, 4x) | [4x, 6x)
    assert segment_boundaries(16, (4, 6)) == ()  # OFA's first expand phase: one sort


def test_epsilon_ramp_has_a_floor_in_steps_at_short_schedules():
    options = deps.Options(epsilon_epochs=0.2, epsilon_min_steps=50)
    assert deps.ramp_steps(options, steps_per_epoch=5) == 50  # 1 step from the epochs, the floor wins
    assert deps.ramp_steps(options, steps_per_epoch=1000) == 200
    values = [deps.epsilon(options, step, steps_per_epoch=5) for step in range(60)]
    assert values[0] == pytest.approx(1e-4) and values[25] == pytest.approx(0.5, abs=0.01)
    assert values[49] < 1.0 and values[50:] == [1.0] * 10
    assert deps.epsilon(deps.Options(epsilon_epochs=0), 0, 5) == 1.0  # no ramp: ε = 1 at once


def test_bucket_pareto_accuracy_on_a_hand_made_front():
    # MACs 0..60 in 6 buckets of width 10; the best of each bucket counts, dominated ones too.
    points = [{"macs": m, "accuracy": a} for m, a in [
        (0, 0.50), (5, 0.40), (15, 0.60), (25, 0.70), (28, 0.65), (35, 0.72), (45, 0.71), (60, 0.80)]]
    # Curve through (0, .5) (15, .6) (25, .7) (35, .72) (45, .71) (60, .8), x over 60.
    xs, ys = np.array([0, 15, 25, 35, 45, 60]) / 60, [0.5, 0.6, 0.7, 0.72, 0.71, 0.8]
    expected = float(np.sum((xs[1:] - xs[:-1]) * (np.array(ys[1:]) + ys[:-1]) / 2))
    assert bucket_pareto_accuracy(points, 6) == pytest.approx(expected)
    assert bucket_pareto_accuracy(points, 1) == pytest.approx(0.80)  # one bucket: its best, held flat


def test_weight_decay_exclusion_leaves_batchnorm_and_biases_alone():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3), keras.layers.BatchNormalization(),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    for var in model.trainable_variables:
        var.assign(np.full(var.shape, 0.5, np.float32))
    train = TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.0, weight_decay=0.1,
                        weight_decay_exclude=("gamma", "beta", "bias"))
    optimizer = make_optimizer(train, steps_per_epoch=1)
    optimizer.build(model.trainable_variables)
    optimizer.apply([tf.zeros_like(v) for v in model.trainable_variables], model.trainable_variables)
    changed = {v.path: not np.allclose(v.numpy(), 0.5) for v in model.trainable_variables}
    assert {p for p, c in changed.items() if c} == {v.path for v in model.trainable_variables
                                                    if v.name == "kernel"}
