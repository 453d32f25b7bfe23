"""BatchNorm recalibration of a subnet, and extraction of a subnet as a plain Keras model."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from keras_edge import _compat


def calibrate_bn(supernet, config, batches) -> None:
    """Reset the BatchNorm statistics of subnet ``config`` to their average over ``batches``.

    ``batches`` is an iterable of image tensors (or ``{"image": ...}`` dicts) from the
    training split; the statistics of the channels this subnet uses are replaced by
    the mean over batches of the per-batch mean and variance, as OFA does.
    """
    step = _calibration_step(supernet, config is None)
    subnet = None if config is None else tf.constant(supernet.space.check(config))
    for n, batch in enumerate(batches):
        images = batch["image"] if isinstance(batch, dict) else batch
        step(images, subnet, tf.constant(1.0 / (n + 1)))


def _calibration_step(supernet, full):
    cache = supernet.__dict__.setdefault("_keras_edge_calibration_steps", {})
    if full not in cache:
        cache[full] = tf.function(lambda x, subnet, weight: supernet(
            x, training=True, subnet=subnet, calibrate=weight))
    return cache[full]


def predict_logits(supernet, config, images, batch_size=512) -> np.ndarray:
    """Inference logits of subnet ``config`` (``None`` = full model) on a uint8/float array."""
    cache = supernet.__dict__.setdefault("_keras_edge_predict_steps", {})
    full = config is None
    if full not in cache:
        cache[full] = tf.function(lambda x, subnet: supernet(x, training=False, subnet=subnet))
    subnet = None if full else tf.constant(supernet.space.check(config))
    out = []
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(images[start:start + batch_size])
        if x.dtype == tf.uint8:
            x = tf.cast(x, tf.float32) / 255.0
        out.append(cache[full](x, subnet).numpy())
    return np.concatenate(out)


def extract(supernet, config=None, name="subnet") -> keras.Model:
    """A standalone functional Keras model equal to ``supernet`` run with ``config``.

    Uses the supernet's current BatchNorm statistics: call ``calibrate_bn`` first.
    Only standard layers (Conv2D, DepthwiseConv2D, BatchNormalization, Activation,
    Add, pooling, Dense), so the result exports to TFLite with builtin ops.
    """
    space = supernet.space
    depth, kernel, expand = space.parts(space.largest() if config is None else space.check(config))
    inputs = keras.Input(supernet.image_shape, name="image")
    conv = supernet.stem_conv
    x = layers.Conv2D(conv.filters, 3, conv.strides, "same", use_bias=False, name="stem_conv")(inputs)
    _copy(x, conv.kernel)
    x = _bn(x, supernet.stem_bn, "stem_bn")
    x = layers.Activation("hard_swish", name="stem_act")(x)
    for s, stage in enumerate(supernet.blocks):
        for j, block in enumerate(stage[:depth[s]]):
            x = _block(x, block, int(kernel[s, j]), int(expand[s, j]), f"stage{s}_block{j}")
    x = layers.Conv2D(supernet.head_conv.filters, 1, use_bias=False, name="head_conv")(x)
    _copy(x, supernet.head_conv.kernel)
    x = layers.Activation("hard_swish", name="head_act")(_bn(x, supernet.head_bn, "head_bn"))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    dense = layers.Dense(supernet.num_classes, name="classifier")
    outputs = dense(x)
    dense.set_weights([w.numpy() for w in (supernet.classifier.kernel, supernet.classifier.bias)])
    return keras.Model(inputs, outputs, name=name)


def _block(x, block, kernel, expand, name):
    mid = block.in_channels * expand
    inputs = x
    y = layers.Conv2D(mid, 1, use_bias=False, name=f"{name}_expand")(x)
    _copy(y, block.expand_kernel.numpy()[:, :, :, :mid])
    y = layers.Activation(block.activation, name=f"{name}_expand_act")(_bn(y, block.expand_bn, f"{name}_expand_bn"))
    y = layers.DepthwiseConv2D(kernel, block.stride, "same", use_bias=False, name=f"{name}_depthwise")(y)
    _copy(y, block.kernel_for(kernel).numpy()[:, :, :mid, :])
    y = layers.Activation(block.activation, name=f"{name}_depthwise_act")(
        _bn(y, block.depthwise_bn, f"{name}_depthwise_bn"))
    y = layers.Conv2D(block.out_channels, 1, use_bias=False, name=f"{name}_project")(y)
    _copy(y, block.project_kernel.numpy()[:, :, :mid, :])
    y = _bn(y, block.project_bn, f"{name}_project_bn")
    return layers.Add(name=f"{name}_add")([inputs, y]) if block.residual else y


def _copy(tensor, kernel):
    """Set the kernel of the layer that produced the symbolic ``tensor``."""
    layer = _compat.producer(tensor)
    layer.kernel.assign(np.asarray(kernel))


def _bn(x, elastic, name):
    c = x.shape[-1]
    bn = layers.BatchNormalization(epsilon=elastic.epsilon, momentum=elastic.momentum, name=name)
    y = bn(x)
    bn.set_weights([np.asarray(v)[:c] for v in (elastic.gamma, elastic.beta, elastic.moving_mean,
                                                elastic.moving_variance)])
    return y
