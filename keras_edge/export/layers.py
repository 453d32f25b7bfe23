"""Keras layers rebuilt from the builtin-gradient ops of ``gradients``.

``call_layer`` runs one layer of a functional model on tensors, in training mode
(batch-norm batch statistics, dropout) or inference mode. Any other layer raises a
``KerasEdgeError`` that names it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from keras import layers

from keras_edge.errors import KerasEdgeError
from keras_edge.export import gradients as ops

SUPPORTED = (
    "Conv2D, DepthwiseConv2D, Dense, BatchNormalization, ReLU, ReLU6, hard-swish, Activation "
    "(relu, relu6, hard_silu, linear), MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, "
    "GlobalMaxPooling2D, Add, Flatten, Reshape, ZeroPadding2D, Rescaling, Dropout"
)

_ACTIVATIONS = {"linear": lambda x: x, "relu": ops.relu, "relu6": ops.relu6, "hard_silu": ops.hard_swish, "hard_swish": ops.hard_swish}


def unsupported(layer, why=""):
    return KerasEdgeError(
        f"layer {layer.name!r} ({type(layer).__name__}{why}) is not supported by the TFLite training export; "
        f"use only {SUPPORTED}"
    )


def activation(layer, fn):
    name = getattr(fn, "__name__", str(fn))
    if name not in _ACTIVATIONS:
        raise unsupported(layer, f" with activation {name!r}")
    return _ACTIVATIONS[name]


def call_layer(layer, args, kwargs, *, param, training, on_batch_stats, example_weight=None):
    """Run ``layer`` on ``args`` (its functional-graph inputs).

    ``param(layer, attr)`` returns the ``Param`` of the layer's weight ``attr`` (or
    ``None`` when the layer has none); ``on_batch_stats(layer, mean, variance)``
    receives the batch statistics of a batch-norm layer in training mode, which
    weights each example by ``example_weight`` (float [batch] or ``None``).
    """
    x = args[0]
    if isinstance(layer, layers.DepthwiseConv2D):
        _check_2d(layer)
        g = ops.Geometry(x.shape, layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding)
        y = ops.depthwise_conv2d(x, param(layer, "kernel"), param(layer, "bias"), g)
        return activation(layer, layer.activation)(y)
    if isinstance(layer, layers.Conv2D):
        _check_2d(layer)
        if layer.groups != 1:
            raise unsupported(layer, f" with groups={layer.groups}")
        g = ops.Geometry(x.shape, layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding)
        y = ops.conv2d(x, param(layer, "kernel"), param(layer, "bias"), g)
        return activation(layer, layer.activation)(y)
    if isinstance(layer, layers.Dense):
        if len(x.shape) != 2:
            raise unsupported(layer, f" on a rank-{len(x.shape)} input; add Flatten or global pooling before it")
        return activation(layer, layer.activation)(ops.dense(x, param(layer, "kernel"), param(layer, "bias")))
    if isinstance(layer, layers.BatchNormalization):
        return _batch_norm(layer, x, param, training, on_batch_stats, example_weight)
    if isinstance(layer, layers.ReLU):
        if layer.negative_slope or layer.threshold or layer.max_value not in (None, 6.0):
            raise unsupported(layer, " with a negative slope, threshold or max_value other than 6")
        return ops.relu(x) if layer.max_value is None else ops.relu6(x)
    if isinstance(layer, layers.Activation):
        return activation(layer, layer.activation)(x)
    if isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
        _check_2d(layer)
        g = ops.Geometry(x.shape, layer.pool_size, layer.strides, (1, 1), layer.padding)
        return ops.max_pool(x, g) if isinstance(layer, layers.MaxPooling2D) else ops.avg_pool(x, g)
    if isinstance(layer, layers.GlobalAveragePooling2D):
        _check_2d(layer)
        return ops.global_avg_pool(x, layer.keepdims)
    if isinstance(layer, layers.GlobalMaxPooling2D):
        _check_2d(layer)
        return ops.global_max_pool(x, layer.keepdims)
    if isinstance(layer, layers.Add):
        return tf.add_n(list(x))
    if isinstance(layer, layers.Flatten):
        return tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])
    if isinstance(layer, layers.Reshape):
        return tf.reshape(x, [-1, *layer.target_shape])
    if isinstance(layer, layers.ZeroPadding2D):
        _check_2d(layer)
        return tf.pad(x, [[0, 0], list(layer.padding[0]), list(layer.padding[1]), [0, 0]])
    if isinstance(layer, layers.Rescaling):
        return x * layer.scale + layer.offset
    if isinstance(layer, layers.Dropout):
        return ops.dropout(x, layer.rate) if training and layer.rate else x
    raise unsupported(layer)


def _check_2d(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise unsupported(layer, " with data_format='channels_first'")


def _batch_norm(layer, x, param, training, on_batch_stats, example_weight):
    if layer.axis not in (-1, len(x.shape) - 1, [len(x.shape) - 1]) or layer.renorm:
        raise unsupported(layer, " with an axis other than the last, or renorm")
    gamma, beta = param(layer, "gamma"), param(layer, "beta")
    if training and layer.trainable:
        y, mean, variance = ops.batch_norm_train(x, gamma, beta, layer.epsilon, example_weight)
        on_batch_stats(layer, mean, variance)
        return y
    scale = tf.math.rsqrt(param(layer, "moving_variance").value + layer.epsilon)
    if gamma is not None:
        scale *= gamma.value
    shift = -param(layer, "moving_mean").value * scale
    if beta is not None:
        shift += beta.value
    return ops.affine(x, scale, shift)
