"""Each builtin-gradient op matches TensorFlow's own gradient (eager, tiny tensors)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_edge.export import gradients as G  # noqa: E402

rng = np.random.default_rng(0)


def assert_same_gradients(custom, reference, x, *weights):
    """Outputs and the gradients of a random projection agree for input and weights."""
    tensors = [tf.constant(t) for t in (x, *weights)]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(tensors)
        ours, theirs = custom(*tensors), reference(*tensors)
        up = tf.constant(rng.normal(size=ours.shape).astype(np.float32))
        ours_loss, theirs_loss = tf.reduce_sum(ours * up), tf.reduce_sum(theirs * up)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    for a, b in zip(tape.gradient(ours_loss, tensors), tape.gradient(theirs_loss, tensors)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def trained(w):
    return G.Param(w, w)


CONVS = [(3, 1, 1, "same", 8), (3, 2, 1, "same", 7), (3, 1, 2, "same", 9), (5, 2, 1, "valid", 12), (1, 1, 1, "valid", 5)]


@pytest.mark.parametrize("k,s,d,padding,size", CONVS)
def test_conv2d(k, s, d, padding, size):
    x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
    w, b = rng.normal(size=(k, k, 3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    g = G.Geometry(x.shape, (k, k), (s, s), (d, d), padding)
    assert_same_gradients(lambda x, w, b: G.conv2d(x, trained(w), trained(b), g),
                          lambda x, w, b: tf.nn.conv2d(x, w, s, padding.upper(), dilations=d) + b, x, w, b)


@pytest.mark.parametrize("k,s,d,padding,size", CONVS)
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv2d(k, s, d, padding, size, multiplier):
    x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
    w = rng.normal(size=(k, k, 3, multiplier)).astype(np.float32)
    g = G.Geometry(x.shape, (k, k), (s, s), (d, d), padding)
    assert_same_gradients(
        lambda x, w: G.depthwise_conv2d(x, G.Param(w, tf.reshape(w, [k, k, 3 * multiplier])), None, g),
        lambda x, w: tf.nn.depthwise_conv2d(x, w, [1, s, s, 1], padding.upper(), dilations=[d, d]), x, w)


def test_partial_channel_weight_gradient():
    """With channels [0, 2] selected, the weight gradient is those channels of the full one."""
    x = tf.constant(rng.normal(size=(2, 6, 6, 3)).astype(np.float32))
    w = tf.constant(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))
    g = G.Geometry(x.shape, (3, 3), (2, 2), (1, 1), "same")
    part = tf.gather(w, [0, 2], axis=-1)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([w, part])
        ours = tf.reduce_sum(G.conv2d(x, G.Param(w, part, np.array([0, 2])), None, g) ** 2)
        theirs = tf.reduce_sum(tf.nn.conv2d(x, w, 2, "SAME") ** 2)
    np.testing.assert_allclose(tape.gradient(ours, part), tf.gather(tape.gradient(theirs, w), [0, 2], axis=-1),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k,s,padding,size", [(2, 2, "valid", 7), (3, 2, "same", 7), (3, 1, "same", 5)])
def test_pooling(k, s, padding, size):
    x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
    g = G.Geometry(x.shape, (k, k), (s, s), (1, 1), padding)
    assert_same_gradients(lambda x: G.max_pool(x, g), lambda x: tf.nn.max_pool2d(x, k, s, padding.upper()), x)
    assert_same_gradients(lambda x: G.avg_pool(x, g), lambda x: tf.nn.avg_pool2d(x, k, s, padding.upper()), x)


def test_max_pool_tie_goes_to_first_maximum():
    x = np.zeros((1, 2, 2, 1), np.float32)
    g = G.Geometry(x.shape, (2, 2), (2, 2), (1, 1), "valid")
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = G.max_pool(x, g)
    np.testing.assert_array_equal(tape.gradient(y, x)[0, :, :, 0], [[1, 0], [0, 0]])


def test_batch_norm_activations_pooling_loss():
    x = (3 * rng.normal(size=(4, 5, 5, 3))).astype(np.float32)
    gamma, beta = rng.normal(size=3).astype(np.float32), rng.normal(size=3).astype(np.float32)

    def reference_bn(x, gamma, beta):
        mean, var = tf.nn.moments(x, [0, 1, 2])
        return (x - mean) * tf.math.rsqrt(var + 1e-3) * gamma + beta

    assert_same_gradients(lambda x, g, b: G.batch_norm_train(x, trained(g), trained(b), 1e-3)[0], reference_bn, x, gamma, beta)
    assert_same_gradients(G.relu, tf.nn.relu, x)
    assert_same_gradients(G.relu6, tf.nn.relu6, x)
    assert_same_gradients(G.hard_swish, keras.activations.hard_silu, x)
    assert_same_gradients(G.global_avg_pool, lambda x: tf.reduce_mean(x, [1, 2]), x)
    assert_same_gradients(G.global_max_pool, lambda x: tf.reduce_max(x, [1, 2]), x)
    labels = np.array([0, 2, 1, 2])
    logits = rng.normal(size=(4, 3)).astype(np.float32)
    assert_same_gradients(lambda z: G.softmax_cross_entropy(z, labels),
                          lambda z: tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, z)), logits)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    assert_same_gradients(lambda x, w: G.dense(x, trained(w), None), lambda x, w: x @ w, x[:, 0, :, 0], w)
