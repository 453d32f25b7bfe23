"""VGG-style network: blocks of Conv-BN-ReLU ending in MaxPool, then GAP and a classifier."""

import keras
from keras import layers

from keras_edge.models.batch_norm import BatchNormalization

DEFAULT_BLOCKS = ((32, 32), (64, 64), (128, 128))


def vgg(input_shape, num_classes, width=1.0, widths=None, blocks=None, bn_momentum=0.9):
    """Build a VGG-style model.

    ``blocks`` lists the base widths of each block's convolutions (default
    ``[[32, 32], [64, 64], [128, 128]]``); every block ends with a 2x2 MaxPool.
    ``width`` multiplies them; ``widths`` (a flat list, one per convolution)
    overrides the result exactly, as growth methods need. Layers are named
    ``conv{i}``, ``bn{i}``, ``relu{i}`` (i from 1), ``pool{b}``, ``gap``, ``classifier``.
    ``bn_momentum`` is the BatchNorm moving-average momentum.
    """
    blocks = [list(b) for b in (blocks or DEFAULT_BLOCKS)]
    n_convs = sum(len(b) for b in blocks)
    if widths is None:
        widths = [max(1, round(c * width)) for b in blocks for c in b]
    if len(widths) != n_convs:
        raise ValueError(f"widths has {len(widths)} entries but the blocks have {n_convs} convolutions")
    inputs = keras.Input(shape=input_shape, name="image")
    x, i = inputs, 0
    for b, block in enumerate(blocks, start=1):
        for _ in block:
            i += 1
            x = layers.Conv2D(int(widths[i - 1]), 3, padding="same", use_bias=False, name=f"conv{i}")(x)
            x = BatchNormalization(momentum=bn_momentum, name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(name=f"pool{b}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name="vgg")
