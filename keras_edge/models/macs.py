"""Count parameters and multiply-accumulates (MACs) of a Keras model."""

from __future__ import annotations

import math

import keras

from keras_edge.protocols import ElasticModel


def count_params(model) -> int:
    """Number of trainable and non-trainable weights (BatchNorm statistics included)."""
    return int(sum(math.prod(w.shape) for w in model.weights))


def _layer_macs(layer) -> int:
    if isinstance(layer, keras.Model):
        return sum(_layer_macs(inner) for inner in layer.layers)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _, h, w, c = layer.output.shape
        kh, kw = layer.kernel_size
        return h * w * kh * kw * c
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, cout = layer.output.shape
        kh, kw = layer.kernel_size
        cin = layer.input.shape[-1] // layer.groups
        return h * w * kh * kw * cin * cout
    if isinstance(layer, keras.layers.Dense):
        positions = math.prod(layer.input.shape[1:-1]) if len(layer.input.shape) > 2 else 1
        return positions * layer.input.shape[-1] * layer.units
    return 0


def count_macs(model) -> int:
    """MACs of one forward pass on one example (convolutions and dense layers).

    A model that counts its own (``subnet_macs(None)``, e.g. a supernet whose
    layers are not called symbolically) is asked directly.
    """
    if isinstance(model, ElasticModel):
        return int(model.subnet_macs(None))
    return int(sum(_layer_macs(layer) for layer in model.layers))
