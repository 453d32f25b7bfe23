"""MobileNetV2 with width multiplier alpha, sized for 28x28 and 32x32 inputs."""

import keras
from keras import layers

from keras_edge.models.batch_norm import BatchNormalization

# (expansion t, channels c, repeats n, first stride s), as in the paper's table 2,
# shortened and with fewer strides for small images.
DEFAULT_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2), (6, 96, 1, 1))


def _div8(value):
    return max(8, int(value + 4) // 8 * 8)


def mobilenet_v2(input_shape, num_classes, width=1.0, stages=None, last_channels=256, dropout=0.0, bn_momentum=0.9):
    """MobileNetV2 (Sandler et al. 2018): inverted residual blocks with ReLU6.

    ``width`` is the paper's alpha; ``stages`` lists ``[t, c, n, s]`` rows; ``bn_momentum`` is
    the BatchNorm moving-average momentum (0.9: PyTorch's default, see ``keras_edge.models``).
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(_div8(32 * width), 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    block = 0
    for t, c, n, s in stages or DEFAULT_STAGES:
        out_channels = _div8(c * width)
        for r in range(n):
            block += 1
            x = _inverted_residual(x, t, out_channels, s if r == 0 else 1, f"block{block}", bn_momentum)
    x = layers.Conv2D(_div8(last_channels * max(1.0, width)), 1, use_bias=False, name="head_conv")(x)
    x = BatchNormalization(momentum=bn_momentum, name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2")


def _inverted_residual(x, expansion, out_channels, stride, name, bn_momentum):
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = layers.Conv2D(in_channels * expansion, 1, use_bias=False, name=f"{name}_expand")(y)
        y = BatchNormalization(momentum=bn_momentum, name=f"{name}_expand_bn")(y)
        y = layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = BatchNormalization(momentum=bn_momentum, name=f"{name}_dw_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_dw_relu")(y)
    y = layers.Conv2D(out_channels, 1, use_bias=False, name=f"{name}_project")(y)
    y = BatchNormalization(momentum=bn_momentum, name=f"{name}_project_bn")(y)
    if stride == 1 and in_channels == out_channels:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y
