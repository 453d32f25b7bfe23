"""A small CIFAR-style ResNet (He et al. 2016): depth 6n+2, three stages."""

import keras
from keras import layers

from keras_edge.models.batch_norm import BatchNormalization


def resnet(input_shape, num_classes, width=1.0, depth=8, base=16, bn_momentum=0.9):
    """ResNet-``depth`` with basic blocks; ``depth`` must be 6n+2 (8, 14, 20, ...); ``bn_momentum``
    is the BatchNorm moving-average momentum."""
    if (depth - 2) % 6:
        raise ValueError(f"depth must be 6n+2 (8, 14, 20, ...), got {depth}")
    blocks_per_stage = (depth - 2) // 6
    channels = max(1, round(base * width))
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inputs, channels, 1, "stem", bn_momentum)
    x = layers.ReLU(name="stem_relu")(x)
    block = 0
    for stage in range(3):
        filters = channels * 2**stage
        for r in range(blocks_per_stage):
            block += 1
            stride = 2 if stage > 0 and r == 0 else 1
            x = _basic_block(x, filters, stride, f"block{block}", bn_momentum)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


def _conv_bn(x, filters, stride, name, bn_momentum, kernel=3):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    return BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)


def _basic_block(x, filters, stride, name, bn_momentum):
    shortcut = x
    y = layers.ReLU(name=f"{name}_relu1")(_conv_bn(x, filters, stride, f"{name}_a", bn_momentum))
    y = _conv_bn(y, filters, 1, f"{name}_b", bn_momentum)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, stride, f"{name}_shortcut", bn_momentum, kernel=1)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_relu2")(y)
