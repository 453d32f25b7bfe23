"""The fused BatchNorm of the speed work computes what the unfused one does: outputs, gradients and
moving statistics, in the elastic supernet and in the model zoo's layer; under op determinism
both take the unfused path."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_edge import _compat
from keras_edge.models.batch_norm import BatchNormalization
from keras_edge.models.vgg import vgg
from keras_edge_deps.supernet import ElasticMobileNet

OPTIONS = dict(stage_widths=[8], stage_strides=[2], stage_activations=["hard_swish"], head_width=16,
               depths=[1, 2], kernels=[3, 5], expands=[2, 3])


def outputs_and_gradients(model, images, labels, **call):
    with tf.GradientTape() as tape:
        logits = model(images, training=True, **call)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    grads = tape.gradient(loss, model.trainable_variables)
    grads = [np.zeros(v.shape) if g is None else g.numpy() for g, v in zip(grads, model.trainable_variables)]
    return logits.numpy(), grads, [v.numpy() for v in model.non_trainable_variables]


def assert_same(a, b):
    logits_a, grads_a, stats_a = a
    logits_b, grads_b, stats_b = b
    np.testing.assert_allclose(logits_a, logits_b, rtol=1e-4, atol=1e-5)
    scale = max(np.abs(g).max() for g in grads_a)
    assert max(np.abs(x - y).max() for x, y in zip(grads_a, grads_b)) < 1e-4 * scale
    assert max(np.abs(x - y).max() for x, y in zip(stats_a, stats_b)) < 1e-5


@pytest.mark.parametrize("subnet", [None, "smallest"])
def test_fused_elastic_batchnorm_trains_like_the_unfused_one(subnet):
    rng = np.random.default_rng(0)
    images, labels = tf.constant(rng.random((8, 12, 12, 1), np.float32)), tf.constant(rng.integers(0, 4, 8))
    results = []
    for fused in (True, False):
        keras.utils.set_random_seed(0)
        model = ElasticMobileNet((12, 12, 1), 4, fused_batch_norm=fused, **OPTIONS)
        call = {} if subnet is None else {"subnet": model.space.smallest()}
        results.append(outputs_and_gradients(model, images, labels, **call))
    assert_same(*results)


def test_the_zoos_fused_batchnorm_trains_like_keras_own():
    rng = np.random.default_rng(1)
    images, labels = tf.constant(rng.normal(size=(6, 5, 5, 3)).astype(np.float32)), tf.constant(rng.integers(0, 2, 6))
    results = []
    for layer in (BatchNormalization, keras.layers.BatchNormalization):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5, 5, 3)), keras.layers.Conv2D(4, 3), layer(momentum=0.8),
                                  keras.layers.Flatten(), keras.layers.Dense(2)])
        results.append(outputs_and_gradients(model, images, labels))
    assert_same(*results)
    assert type(model.layers[1]).__name__ == "BatchNormalization"  # export code matches on the name


def training_ops(model) -> set:
    step = tf.function(lambda x: model(x, training=True))
    return {op.type for op in step.get_concrete_function(tf.TensorSpec((2, 12, 12, 1))).graph.get_operations()}


@pytest.mark.parametrize("build", [lambda: vgg((12, 12, 1), 4, width=0.125),
                                   lambda: ElasticMobileNet((12, 12, 1), 4, **OPTIONS)], ids=["zoo", "supernet"])
def test_fused_only_without_op_determinism(build, monkeypatch):
    model = build()
    monkeypatch.setattr(_compat, "op_determinism_enabled", lambda: False)  # another test may have enabled it
    assert "FusedBatchNormV3" in training_ops(model)
    monkeypatch.setattr(_compat, "op_determinism_enabled", lambda: True)
    assert "FusedBatchNormV3" not in training_ops(model)


def test_the_unrolled_subnet_step_makes_the_looped_steps_update():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from bench_supernet import step_of, unrolled_subnet_step

    rng = np.random.default_rng(2)
    batch = {"image": tf.constant(rng.random((8, 12, 12, 1), np.float32)),
             "label": tf.constant(rng.integers(0, 4, 8), tf.int32)}
    updated = []
    for unrolled in (False, True):
        keras.utils.set_random_seed(0)
        model = ElasticMobileNet((12, 12, 1), 4, **OPTIONS)
        space = model.space
        configs = [space.smallest(), space.sample(np.random.default_rng(0)), space.largest()]
        weights = tf.constant([[1.0, 1.0, 0.0]] + [[0.5, 0.0, 1.0]] * 3)
        (unrolled_subnet_step if unrolled else step_of)(model)(batch, (None, *map(tf.constant, configs)), weights)
        updated.append([v.numpy() for v in model.trainable_variables])
    for a, b in zip(*updated, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
