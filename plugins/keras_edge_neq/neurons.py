"""The neurons of a Keras model: one per output channel of each convolution and dense layer.

A neuron owns its slice of the layer's kernel (its fan-in) and its bias. The scale
(gamma) and shift (beta) of its channel in a BatchNormalization that directly follows
the layer are recorded with it: under ``accounting = "all"`` the four move together
(as once BatchNorm is folded into the convolution); under the authors' ``"conv"``
accounting BatchNorm trains on every channel instead. For a depthwise convolution a
neuron is one input channel with its ``depth_multiplier`` filters.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from keras_edge import _compat
from keras_edge.errors import KerasEdgeError

_SUPPORTED = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
              keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)


@dataclasses.dataclass
class NeuronLayer:
    """One convolution or dense layer seen as a row of neurons."""

    name: str
    depthwise: bool
    units: int
    """Number of neurons (output channels; input channels for a depthwise convolution)."""
    kernel: object
    bias: object
    gamma: object
    beta: object
    multiplier: int
    """Outputs per neuron (a depthwise convolution's ``depth_multiplier``, else 1)."""
    in_channels: int
    in_positions: int
    """Spatial positions of one example's input (1 for a dense layer on vectors)."""
    out_positions: int
    output: object
    """The layer's own output (before BatchNorm): one channel per neuron output."""
    normalized: object
    """The output of the BatchNorm that follows the layer (the layer's output when there is none)."""
    batchnorm: object = None
    """That BatchNormalization layer, or ``None``."""
    is_dense: bool = False
    is_classifier: bool = False

    @property
    def fan_in(self) -> int:
        """Kernel weights of one neuron."""
        return int(np.prod(self.kernel.shape)) // self.units

    @property
    def params_per_neuron(self) -> int:
        """Kernel slice, bias and BatchNorm scale/shift of one neuron."""
        extra = sum(1 for v in (self.bias, self.gamma, self.beta) if v is not None)
        return self.fan_in + extra * self.multiplier

    @property
    def own_params_per_neuron(self) -> int:
        """Kernel slice and bias of one neuron: what the authors' code counts."""
        return self.fan_in + (self.multiplier if self.bias is not None else 0)

    def variables(self):
        return [v for v in (self.kernel, self.bias, self.gamma, self.beta) if v is not None]

    def selected_outputs(self, kernel_mask) -> np.ndarray:
        """Bool per output channel: whose kernel slice ``kernel_mask`` lets move."""
        mask = np.broadcast_to(np.asarray(kernel_mask) != 0, self.kernel.shape)
        return mask.reshape(-1, mask.shape[-2] * mask.shape[-1] if self.depthwise else mask.shape[-1]).any(axis=0)

    def masks(self, selected) -> dict:
        """``{variable.path: mask}`` that lets exactly the ``selected`` (bool, ``units``) neurons move."""
        selected = np.asarray(selected, np.float32)
        per_output = np.repeat(selected, self.multiplier)
        if self.depthwise:
            shape = [1] * (len(self.kernel.shape) - 2) + [self.units, self.multiplier]
            kernel_mask = np.broadcast_to(selected[:, None], shape[-2:]).reshape(shape)
        else:
            kernel_mask = selected
        masks = {self.kernel.path: kernel_mask}
        for variable in (self.bias, self.gamma, self.beta):
            if variable is not None:
                masks[variable.path] = per_output
        return masks


def neuron_layers(model) -> list[NeuronLayer]:
    """The model's convolution and dense layers, in order; the last dense one is the classifier."""
    if not isinstance(model, keras.Model) or not _compat.is_functional_graph(model) or not model.inputs:
        raise KerasEdgeError("NEq selection needs a functional Keras model (keras.Model(inputs, outputs)); "
                             "build the model with the functional API")
    followers = _batchnorm_followers(model)
    result = []
    for layer in model.layers:
        if not isinstance(layer, _SUPPORTED) or not layer.trainable:
            continue
        bn = followers.get(layer.name)
        depthwise = isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D))
        multiplier = layer.depth_multiplier if depthwise else 1
        in_shape, out_shape = layer.input.shape, layer.output.shape
        result.append(NeuronLayer(
            name=layer.name, depthwise=depthwise,
            units=in_shape[-1] if depthwise else out_shape[-1],
            kernel=layer.kernel, bias=layer.bias if layer.use_bias else None,
            gamma=getattr(bn, "gamma", None) if bn else None,
            beta=getattr(bn, "beta", None) if bn else None,
            multiplier=multiplier, in_channels=in_shape[-1],
            in_positions=math.prod(in_shape[1:-1]), out_positions=math.prod(out_shape[1:-1]),
            output=layer.output, normalized=bn.output if bn else layer.output, batchnorm=bn,
            is_dense=isinstance(layer, keras.layers.Dense),
        ))
    dense = [n for n in result if n.is_dense]
    if not dense:
        raise KerasEdgeError(f"model {model.name!r} has no Dense layer; NEq selection treats the last "
                             "Dense layer as the classifier, so the model needs one")
    dense[-1].is_classifier = True
    return result


def _batchnorm_followers(model) -> dict:
    """Layer name -> the trainable BatchNormalization (on the last axis) that reads its output."""
    followers = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or not layer.trainable:
            continue
        if layer.axis not in (-1, len(layer.input.shape) - 1):
            continue
        producer = _compat.producer(layer.input)
        if isinstance(producer, _SUPPORTED):
            followers[producer.name] = layer
    return followers


def in_scope(layers, candidates: str = "conv_dense") -> list[NeuronLayer]:
    """The classifier and the candidate layers: convolutions, plus hidden dense layers
    when ``candidates == "conv_dense"``."""
    return [layer for layer in layers if layer.is_classifier or not layer.is_dense or candidates == "conv_dense"]


def batchnorm_layers(model) -> list:
    """Every trainable BatchNormalization layer of the model."""
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


def neuron_masks(layers, selected: dict) -> dict:
    """``{variable.path: mask}`` for ``{layer name: bool array of selected neurons}``."""
    masks = {}
    for layer in layers:
        masks.update(layer.masks(selected[layer.name]))
    return masks
