"""Width growth of chain-shaped networks (VGG, the small CNN): new widths, weights carried over.

A *growable* layer is a Conv2D or hidden Dense layer; the last Dense layer (the
classifier) keeps its units. Strategies for the new neurons:

- ``firefly``: function-preserving. ``candidates`` times more new neurons than needed
  get random incoming weights and zero outgoing weights; each is scored by the squared
  gradient of the loss with respect to its outgoing weights (the first-order loss
  decrease if they were switched on, Firefly, Wu et al. 2020) and the best are kept.
- ``split``: function-preserving neuron splitting (Net2WiderNet, Chen et al. 2016):
  randomly chosen neurons are duplicated and their outgoing weights shared equally.
- ``random``: new neurons with random incoming and outgoing weights (a baseline).

BatchNorm statistics of new channels are measured on a calibration batch.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from keras_edge.errors import KerasEdgeError

STRATEGIES = ("firefly", "split", "random")


def chain_layers(model) -> list:
    """The model's layers after the input, checked to form a single chain."""
    chain = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    previous = model.inputs[0]
    for layer in chain:
        if isinstance(layer.input, (list, tuple)) or layer.input is not previous:
            raise KerasEdgeError(
                f"growth supports chain-shaped models (vgg, small_cnn); layer {layer.name!r} of "
                f"{model.name!r} branches or merges; use model.name = \"vgg\"")
        previous = layer.output
    return chain


def growable_layers(model) -> list:
    """Conv2D and Dense layers whose width may grow (all but the classifier)."""
    weighted = [layer for layer in chain_layers(model) if _is_growable_kind(layer)]
    return weighted[:-1]


def widths_of(model) -> list[int]:
    """Current widths (filters or units) of the growable layers."""
    return [int(layer.kernel.shape[-1]) for layer in growable_layers(model)]


def param_count(model, widths) -> int:
    """Weights the model would have with ``widths`` (BatchNorm statistics included)."""
    width_of = dict(zip([layer.name for layer in growable_layers(model)], widths))
    channels, total = int(model.inputs[0].shape[-1]), 0
    for layer in chain_layers(model):
        if _is_growable_kind(layer):
            out = int(width_of.get(layer.name, layer.kernel.shape[-1]))
            total += math.prod(layer.kernel.shape[:-2]) * channels * out + (out if layer.use_bias else 0)
            channels = out
        elif isinstance(layer, keras.layers.Flatten):
            channels *= math.prod(layer.input.shape[1:-1])
        elif isinstance(layer, keras.layers.BatchNormalization):
            total += len(layer.weights) * channels
        elif layer.weights:
            raise KerasEdgeError(f"growth cannot resize layer {layer.name!r} ({type(layer).__name__})")
    return total


def fit_widths(model, target_params: int) -> list[int]:
    """The widest widths (a common multiplier, then one channel at a time) within ``target_params``."""
    base = widths_of(model)
    if param_count(model, base) > target_params:
        raise KerasEdgeError(
            f"the model already has {param_count(model, base)} weights, more than the growth target "
            f"{target_params}; raise plugins.osg.target_params or start from a smaller model")
    scaled = lambda s: [max(w, int(w * s)) for w in base]  # noqa: E731
    lo, hi = 1.0, 2.0
    while param_count(model, scaled(hi)) <= target_params:
        lo, hi = hi, hi * 2
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if param_count(model, scaled(mid)) <= target_params else (lo, mid)
    widths = scaled(lo)
    added = True
    while added:
        added = False
        for i in range(len(widths)):
            trial = widths[:i] + [widths[i] + 1] + widths[i + 1:]
            if param_count(model, trial) <= target_params:
                widths, added = trial, True
    return widths


def shot_widths(start, final, shots: int) -> list[list[int]]:
    """Widths after each of ``shots`` growth steps, geometric from ``start`` to ``final``."""
    plan = []
    for k in range(1, shots + 1):
        step = [max(s, int(round(s * (f / s) ** (k / shots)))) for s, f in zip(start, final)]
        plan.append(step if k < shots else list(final))
    return plan


def grow(model, widths, strategy="firefly", x=None, y=None, candidates=4, seed=0):
    """Return a copy of ``model`` widened to ``widths``, its weights carried over.

    ``x`` (float32 NHWC images) and ``y`` (int labels) are the calibration batch for
    BatchNorm statistics and, with ``firefly``, the candidate scores.
    """
    if strategy not in STRATEGIES:
        raise KerasEdgeError(f"unknown growth strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    rng = np.random.default_rng(seed)
    old = widths_of(model)
    if any(n < o for n, o in zip(widths, old)) or len(widths) != len(old):
        raise KerasEdgeError(f"growth widths {list(widths)} must not be below the current {old}")
    names = [layer.name for layer in growable_layers(model)]
    if strategy == "firefly":
        if x is None or y is None:
            raise KerasEdgeError("firefly growth scores candidates on a batch; pass x and y")
        pool = [o + candidates * (n - o) for o, n in zip(old, widths)]
        fresh = {name: _fresh_map(o, p) for name, o, p in zip(names, old, pool)}
        wide = _carry(model, _build(model, pool, seed), fresh, zero_outgoing=True)
        _calibrate(wide, x, fresh)
        scores = _outgoing_scores(wide, x, y)
        keep = {name: np.concatenate([np.arange(o), o + np.sort(np.argsort(-scores[name][o:])[:n - o])])
                for name, o, n in zip(names, old, widths)}
        return _carry(wide, _build(model, widths, seed), keep, zero_outgoing=True)
    if strategy == "split":
        maps = {name: np.concatenate([np.arange(o), rng.choice(o, n - o, replace=n - o > o)])
                for name, o, n in zip(names, old, widths)}
        return _carry(model, _build(model, widths, seed), maps, zero_outgoing=True)
    maps = {name: _fresh_map(o, n) for name, o, n in zip(names, old, widths)}
    grown = _carry(model, _build(model, widths, seed), maps, zero_outgoing=False)
    _calibrate(grown, x, maps)
    return grown


def _is_growable_kind(layer) -> bool:
    return isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and not isinstance(
        layer, keras.layers.DepthwiseConv2D)


def _fresh_map(old: int, new: int) -> np.ndarray:
    return np.concatenate([np.arange(old), -np.ones(new - old, np.int64)])


def _build(model, widths, seed):
    """A fresh copy of ``model``'s architecture with ``widths``, randomly initialised."""
    width_of = dict(zip([layer.name for layer in growable_layers(model)], widths))
    order = {layer.name: i for i, layer in enumerate(model.layers)}

    def clone(layer):
        config = layer.get_config()
        if layer.name in width_of:
            config["filters" if isinstance(layer, keras.layers.Conv2D) else "units"] = int(width_of[layer.name])
        initializer = config.get("kernel_initializer")
        if isinstance(initializer, dict):
            initializer["config"] = {**(initializer.get("config") or {}), "seed": seed * 1000 + order[layer.name]}
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def _carry(source, target, maps, zero_outgoing):
    """Copy ``source``'s weights into ``target``; ``maps[layer]`` gives, for each output
    channel of ``target``'s layer, the source channel it copies (-1: a new one).

    Rows fed by a channel that several target channels copy are divided among them
    (splitting); rows fed by new channels are zeroed when ``zero_outgoing``, so the
    function is preserved; new channels keep ``target``'s random incoming weights.
    """
    in_map = np.arange(int(source.inputs[0].shape[-1]))
    for src, dst in zip(chain_layers(source), chain_layers(target)):
        if _is_growable_kind(src):
            out_map = maps.get(src.name, np.arange(int(src.kernel.shape[-1])))
            dst.kernel.assign(_carry_kernel(src.kernel.numpy(), dst.kernel.numpy(), in_map, out_map, zero_outgoing))
            if src.use_bias:
                bias = dst.bias.numpy()
                bias[out_map >= 0] = src.bias.numpy()[out_map[out_map >= 0]]
                dst.bias.assign(bias)
            in_map = out_map
        elif isinstance(src, keras.layers.Flatten):
            positions = math.prod(src.input.shape[1:-1])
            old_channels = int(src.input.shape[-1])
            in_map = np.concatenate([np.where(in_map >= 0, p * old_channels + in_map, -1) for p in range(positions)])
        elif isinstance(src, keras.layers.BatchNormalization):
            for s, d in zip(src.weights, dst.weights):
                values = d.numpy()
                values[in_map >= 0] = s.numpy()[in_map[in_map >= 0]]
                d.assign(values)
    return target


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


def _calibrate(model, x, maps):
    """Set the BatchNorm moving statistics of new channels to those of the batch ``x``."""
    if x is None:
        return
    chain = chain_layers(model)
    for i, layer in enumerate(chain):
        if layer.name not in maps:
            continue
        norm = next((c for c in chain[i + 1:] if isinstance(c, keras.layers.BatchNormalization)
                     or _is_growable_kind(c)), None)
        if not isinstance(norm, keras.layers.BatchNormalization):
            continue
        new = maps[layer.name] < 0
        z = keras.Model(model.inputs[0], layer.output)(x, training=False).numpy()
        axes = tuple(range(z.ndim - 1))
        for variable, stat in ((norm.moving_mean, z.mean(axes)), (norm.moving_variance, z.var(axes))):
            values = variable.numpy()
            values[new] = stat[new]
            variable.assign(values)


def _outgoing_scores(model, x, y):
    """Per growable layer, per channel: squared gradient of the loss w.r.t. its outgoing weights."""
    chain = chain_layers(model)
    growable = growable_layers(model)
    consumers = {}
    for layer in growable:
        i = chain.index(layer)
        consumers[layer.name] = next(c for c in chain[i + 1:] if _is_growable_kind(c))
    kernels = [consumers[layer.name].kernel for layer in growable]
    with tf.GradientTape() as tape:
        logits = model(x, training=False)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    grads = tape.gradient(loss, kernels)
    scores = {}
    for layer, grad in zip(growable, grads):
        g = tf.square(grad).numpy()
        channels = int(layer.kernel.shape[-1])
        scores[layer.name] = g.reshape(-1, channels, g.shape[-1]).sum(axis=(0, 2))
    return scores
