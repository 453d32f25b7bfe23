"""Widening a functional Keras model: which layers may grow, what a width costs, carrying weights.

A *growable* layer is a Conv2D (not depthwise or grouped) or Dense layer whose output
reaches exactly one other Conv2D/Dense layer (its *consumer*) through per-channel layers
only (BatchNorm, activations, pooling, dropout, depthwise convolutions, flatten), and
nowhere else. So every VGG convolution grows; in a ResNet the first convolution of each
basic block (its output is added to nothing); in MobileNetV2 the expansion convolution of
each inverted residual block (and the stem and head convolutions, which feed no addition).
Layers whose output is added to a shortcut keep their width: growing them would change
the width of the whole residual stream.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from keras_edge.errors import KerasEdgeError

PER_CHANNEL = (keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Activation,
               keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D,
               keras.layers.GlobalMaxPooling2D, keras.layers.Dropout, keras.layers.DepthwiseConv2D,
               keras.layers.ZeroPadding2D)
"""Layers that act on each channel separately: a new channel passes through them as its own."""


def is_dense_kind(layer) -> bool:
    """Conv2D (ungrouped, not depthwise) or Dense: a layer that mixes channels with a kernel."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return False
    if isinstance(layer, keras.layers.Conv2D):
        return layer.groups == 1
    return isinstance(layer, keras.layers.Dense)


class Graph:
    """The layers of a functional model with who feeds whom, and its growable layers."""

    def __init__(self, model):
        if not hasattr(model, "inputs") or len(model.inputs) != 1:
            raise KerasEdgeError(f"growth needs a functional model with one input; {model.name!r} is not")
        self.model = model
        owner = {}
        for layer in model.layers:
            for tensor in _as_list(layer.output):
                owner[id(tensor)] = layer.name
        self.layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        self.inputs = {layer.name: [owner[id(t)] for t in _as_list(layer.input)] for layer in self.layers}
        self.consumers: dict[str, list[str]] = {}
        for name, sources in self.inputs.items():
            for source in sources:
                self.consumers.setdefault(source, []).append(name)
        self.output_names = {owner[id(t)] for t in _as_list(model.outputs)}
        self.consumer_of = {}
        for layer in self.layers:
            consumer = self._single_consumer(layer)
            if consumer is not None:
                self.consumer_of[layer.name] = consumer
        self.growable = [layer for layer in self.layers if layer.name in self.consumer_of]
        if not self.growable:
            raise KerasEdgeError(
                f"model {model.name!r} has no layer whose width can grow (every Conv2D/Dense output is added "
                "to a shortcut or is the model's output); use vgg, small_cnn, resnet or mobilenet_v2")

    def _single_consumer(self, layer):
        """The Conv2D/Dense layer that ``layer``'s channels reach through per-channel layers, or None."""
        if not is_dense_kind(layer) or layer.name in self.output_names:
            return None
        name = layer.name
        while True:
            nexts = self.consumers.get(name, [])
            if len(nexts) != 1 or name in self.output_names:
                return None
            nxt = self.model.get_layer(nexts[0])
            if is_dense_kind(nxt):
                return nxt
            if isinstance(nxt, keras.layers.DepthwiseConv2D) and nxt.depth_multiplier != 1:
                return None
            if not isinstance(nxt, PER_CHANNEL + (keras.layers.Flatten,)):
                return None
            name = nxt.name

    def path(self, producer) -> list:
        """The per-channel layers between ``producer`` and its consumer, in order."""
        out, name = [], producer.name
        consumer = self.consumer_of[producer.name].name
        while True:
            name = self.consumers[name][0]
            if name == consumer:
                return out
            out.append(self.model.get_layer(name))

    def widths(self) -> list[int]:
        return [int(layer.kernel.shape[-1]) for layer in self.growable]

    def param_count(self, widths) -> int:
        """Weights the model would have with ``widths`` (BatchNorm statistics included)."""
        width_of = dict(zip((layer.name for layer in self.growable), widths))
        channels = {self.model.layers[0].name: int(self.model.inputs[0].shape[-1])}
        total = 0
        for layer in self.layers:
            ins = [channels[s] for s in self.inputs[layer.name]]
            c = ins[0]
            if is_dense_kind(layer):
                out = int(width_of.get(layer.name, layer.kernel.shape[-1]))
                total += math.prod(layer.kernel.shape[:-2]) * c * out + (out if layer.use_bias else 0)
                c = out
            elif isinstance(layer, keras.layers.DepthwiseConv2D):
                total += math.prod(layer.kernel.shape[:2]) * c + (c if layer.use_bias else 0)
            elif isinstance(layer, keras.layers.BatchNormalization):
                total += len(layer.weights) * c
            elif isinstance(layer, keras.layers.Flatten):
                c *= math.prod(layer.input.shape[1:-1])
            elif isinstance(layer, keras.layers.Concatenate):
                c = sum(ins)
            elif layer.weights:
                raise KerasEdgeError(f"growth cannot resize layer {layer.name!r} ({type(layer).__name__})")
            channels[layer.name] = c
        return total


def build_widened(model, widths, seed):
    """A fresh copy of ``model``'s architecture with the growable layers at ``widths``."""
    width_of = dict(zip((layer.name for layer in Graph(model).growable), widths))
    order = {layer.name: i for i, layer in enumerate(model.layers)}

    def clone(layer):
        config = layer.get_config()
        if layer.name in width_of:
            config["filters" if isinstance(layer, keras.layers.Conv2D) else "units"] = int(width_of[layer.name])
        for key in ("kernel_initializer", "depthwise_initializer"):
            initializer = config.get(key)
            if isinstance(initializer, dict):
                initializer["config"] = {**(initializer.get("config") or {}), "seed": seed * 1000 + order[layer.name]}
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def carry(source, target, maps, zero_outgoing=True) -> dict:
    """Copy ``source``'s weights into ``target`` (same architecture, wider growable layers).

    ``maps[layer]`` gives, for each output channel of ``target``'s growable layer, the
    channel of ``source`` it copies (-1: a new one, which keeps ``target``'s random
    incoming weights). Outgoing weights of a channel that several target channels copy
    are divided among them (a split); those of new channels are zeroed when
    ``zero_outgoing``, so the function is preserved. Returns every layer's channel map.
    """
    graph = Graph(source)
    channel_maps = {source.layers[0].name: np.arange(int(source.inputs[0].shape[-1]))}
    for src in graph.layers:
        dst = target.get_layer(src.name)
        in_map = channel_maps[graph.inputs[src.name][0]]
        out_map = in_map
        if is_dense_kind(src):
            out_map = maps.get(src.name, np.arange(int(src.kernel.shape[-1])))
            dst.kernel.assign(_carry_kernel(src.kernel.numpy(), dst.kernel.numpy(), in_map, out_map, zero_outgoing))
            if src.use_bias:
                dst.bias.assign(_carry_rows(src.bias.numpy(), dst.bias.numpy(), out_map))
        elif isinstance(src, keras.layers.Flatten):
            positions = math.prod(src.input.shape[1:-1])
            old = int(src.input.shape[-1])
            out_map = np.concatenate([np.where(in_map >= 0, p * old + in_map, -1) for p in range(positions)])
        elif isinstance(src, (keras.layers.BatchNormalization, keras.layers.DepthwiseConv2D)):
            for s, d in zip(src.weights, dst.weights):
                axis = -2 if d.path.endswith("kernel") and d.ndim == 4 else 0
                d.assign(_carry_rows(s.numpy(), d.numpy(), in_map, axis))
        elif src.weights:
            raise KerasEdgeError(f"growth cannot resize layer {src.name!r} ({type(src).__name__})")
        channel_maps[src.name] = out_map
    return channel_maps


def calibrate(model, x, channel_maps) -> None:
    """Set the BatchNorm moving statistics of new channels (map -1) to those of the batch ``x``."""
    if x is None:
        return
    for layer in Graph(model).layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        new = channel_maps[layer.name] < 0
        if not new.any():
            continue
        z = keras.Model(model.inputs[0], layer.input)(x, training=False).numpy()
        axes = tuple(range(z.ndim - 1))
        for variable, stat in ((layer.moving_mean, z.mean(axes)), (layer.moving_variance, z.var(axes))):
            values = variable.numpy()
            values[new] = stat[new]
            variable.assign(values)


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _carry_rows(old, new, channel_map, axis=0):
    new = np.moveaxis(new.copy(), axis, 0)
    known = channel_map >= 0
    new[known] = np.moveaxis(old, axis, 0)[channel_map[known]]
    return np.moveaxis(new, 0, axis)


def _carry_kernel(old, new, in_map, out_map, zero_outgoing):
    known_in, known_out = in_map >= 0, out_map >= 0
    share = np.bincount(in_map[known_in], minlength=old.shape[-2]).astype(old.dtype)
    rows = old[..., in_map[known_in], :] / share[in_map[known_in]][:, None]
    block = new[..., known_in, :]
    block[..., known_out] = rows[..., out_map[known_out]]
    new[..., known_in, :] = block
    if zero_outgoing:
        new[..., ~known_in, :] = 0.0
    return new
