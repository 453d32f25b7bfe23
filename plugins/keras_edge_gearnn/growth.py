"""Width growth: where to add neurons and how to initialise them.

Strategies (``grow_to``):

- ``firefly`` (cross-layer, Firefly, Wu et al. 2020): every growable layer offers new
  neurons (random incoming weights, zero outgoing weights) and split candidates (each
  existing neuron, copied into two with incoming weights ``θ ± ε‖θ‖v`` and half the
  outgoing weights each). All candidates of all layers are ranked together by the loss
  decrease they promise on a calibration batch and added best first while the weight
  count stays within the target, so each layer's width comes out of the data.
- ``split``: the same ranking with split candidates only (splitting steepest descent).
- ``uniform``: one width multiplier for all layers (the target reached by bisection,
  then channel by channel); inside each layer the best of ``candidates`` times more new
  neurons, scored as in ``firefly``, are kept.
- ``random``: uniform widths, new neurons with random incoming and outgoing weights (the
  function changes; a baseline).

Scores, in loss decrease for a step of size ``step``: a new neuron whose outgoing weights
get norm ``step`` in the best direction lowers the loss by ``step * ‖g‖`` (``g``: the
gradient on its zero outgoing weights); a split along ``v`` by ``step * ‖θ‖`` lowers it
by ``-step * ‖θ‖ <g₊ - g₋, v> / 2`` (the derivative of the loss along the split at
``step``, ``g±`` the gradients on the two copies' incoming weights, times ``step / 2``:
the loss is quadratic in the split). ``v`` starts random and takes ``split_steps``
normalised gradient steps towards lower loss. The grown model is function-preserving:
new neurons keep zero outgoing weights and split copies differ by ``split_noise`` (1e-5
of their weights' norm), so outputs change by far less than 1e-5.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_edge.errors import KerasEdgeError
from keras_edge_gearnn.widen import Graph, build_widened, calibrate, carry

STRATEGIES = ("firefly", "split", "uniform", "random")


def growable_layers(model) -> list:
    """The layers whose width may grow (see ``keras_edge_gearnn.widen``)."""
    return Graph(model).growable


def widths_of(model) -> list[int]:
    """Current widths (filters or units) of the growable layers."""
    return Graph(model).widths()


def param_count(model, widths) -> int:
    """Weights ``model`` would have with ``widths`` (BatchNorm statistics included)."""
    return Graph(model).param_count(widths)


def fit_widths(model, target_params: int) -> list[int]:
    """The widest uniform widths (a common multiplier, then one channel at a time) within ``target_params``."""
    graph = Graph(model)
    base = graph.widths()
    _check_target(graph, target_params)
    scaled = lambda s: [max(w, int(w * s)) for w in base]  # noqa: E731
    lo, hi = 1.0, 2.0
    while graph.param_count(scaled(hi)) <= target_params:
        lo, hi = hi, hi * 2
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if graph.param_count(scaled(mid)) <= target_params else (lo, mid)
    widths = scaled(lo)
    added = True
    while added:
        added = False
        for i in range(len(widths)):
            trial = widths[:i] + [widths[i] + 1] + widths[i + 1:]
            if graph.param_count(trial) <= target_params:
                widths, added = trial, True
    return widths


def shot_targets(start: int, final: int, shots: int) -> list[int]:
    """Weight-count targets after each of ``shots`` growth steps, geometric from ``start`` to ``final``."""
    return [int(round(start * (final / start) ** (k / shots))) if k < shots else final for k in range(1, shots + 1)]


def grow_to(model, target_params, strategy="firefly", x=None, y=None, candidates=4, seed=0, step=0.1,
            split_steps=2, split_noise=1e-5):
    """Return a copy of ``model`` grown to at most ``target_params`` weights, and a report.

    ``x`` (float32 NHWC images) and ``y`` (int labels) are the calibration batch for the
    scores and for BatchNorm statistics of new channels. The report holds the widths and,
    for the ranked strategies, how many new and split neurons each layer got.
    """
    if strategy not in STRATEGIES:
        raise KerasEdgeError(f"unknown growth strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    if strategy != "random" and (x is None or y is None):
        raise KerasEdgeError(f"{strategy} growth scores candidates on a batch; pass x and y")
    if strategy in ("uniform", "random"):
        widths = fit_widths(model, target_params)
        return grow(model, widths, strategy, x, y, candidates, seed), {"widths": widths}
    graph = Graph(model)
    _check_target(graph, target_params)
    room = [w - o for w, o in zip(fit_widths(model, target_params), graph.widths())]
    pool = [candidates * max(r, 1) if strategy == "firefly" else 0 for r in room]
    probe = _Probe(model, pool, seed, x, y, split=True)
    new_scores = probe.new_scores(step)
    split_scores, directions = probe.split_scores(step, split_steps, np.random.default_rng(seed))
    ranked = sorted(
        [(s, "new", i, k) for i, scores in enumerate(new_scores) for k, s in enumerate(scores)]
        + [(s, "split", i, k) for i, scores in enumerate(split_scores) for k, s in enumerate(scores)],
        key=lambda c: -c[0])
    widths = graph.widths()
    chosen = {"new": [[] for _ in widths], "split": [[] for _ in widths]}
    for _, kind, i, k in ranked:
        trial = widths[:i] + [widths[i] + 1] + widths[i + 1:]
        if graph.param_count(trial) <= target_params:
            widths = trial
            chosen[kind][i].append(k)
    grown = probe.materialise(chosen, directions, split_noise, seed)
    report = {"widths": widths, "new": [len(c) for c in chosen["new"]], "split": [len(c) for c in chosen["split"]]}
    return grown, report


def grow(model, widths, strategy="uniform", x=None, y=None, candidates=4, seed=0):
    """Return a copy of ``model`` widened to the given per-layer ``widths`` (uniform or random growth).

    ``uniform`` keeps, in each layer, the best-scored of ``candidates`` times more new
    neurons than needed (function-preserving); ``random`` adds random neurons.
    """
    if strategy not in ("uniform", "random"):
        raise KerasEdgeError(f"growth to given widths takes strategy uniform or random, not {strategy!r}")
    graph = Graph(model)
    old = graph.widths()
    if len(widths) != len(old) or any(n < o for n, o in zip(widths, old)):
        raise KerasEdgeError(f"growth widths {list(widths)} must not be below the current {old}")
    if strategy == "random":
        maps = {layer.name: _fresh(o, n) for layer, o, n in zip(graph.growable, old, widths)}
        grown = build_widened(model, widths, seed)
        calibrate(grown, x, carry(model, grown, maps, zero_outgoing=False))
        return grown
    probe = _Probe(model, [candidates * (n - o) for o, n in zip(old, widths)], seed, x, y, split=False)
    scores = probe.new_scores(step=1.0)
    keep = [list(np.argsort(-s)[:n - o]) for s, o, n in zip(scores, old, widths)]
    return probe.materialise({"new": keep, "split": [[] for _ in old]}, None, 0.0, seed)


class _Probe:
    """The model widened by all candidates, where they are scored, and from which the chosen are taken.

    Channel order of each growable layer: the ``o`` existing neurons, then (with
    ``split``) a copy of each, then the ``pool`` new candidates. New candidates' incoming
    weights from other layers' extra channels are zeroed, so a new neuron reads only the
    existing channels, exactly as it will in the grown model.
    """

    def __init__(self, model, pool, seed, x, y, split):
        self.model, self.graph, self.x, self.y = model, Graph(model), x, y
        self.old = self.graph.widths()
        self.split, self.pool = split, pool
        copies = [o if split else 0 for o in self.old]
        maps = {layer.name: np.concatenate([np.arange(o), np.arange(c), -np.ones(p, np.int64)])
                for layer, o, c, p in zip(self.graph.growable, self.old, copies, pool)}
        self.net = build_widened(model, [o + c + p for o, c, p in zip(self.old, copies, pool)], seed)
        channel_maps = self.channel_maps = carry(model, self.net, maps)
        for layer in self.graph.growable:
            others = ~_first_copies(channel_maps[self.graph.inputs[layer.name][0]])
            kernel = self.net.get_layer(layer.name).kernel
            values = kernel.numpy()
            block = values[..., others, :]
            block[..., maps[layer.name] < 0] = 0.0
            values[..., others, :] = block
            kernel.assign(values)
        calibrate(self.net, x, channel_maps)
        self.theta = [self.net.get_layer(layer.name).kernel.numpy() for layer in self.graph.growable]
        self.rows = [_existing_rows(channel_maps[self.graph.inputs[layer.name][0]]) for layer in self.graph.growable]

    def _gradients(self):
        graph = self.graph
        producers = [self.net.get_layer(layer.name).kernel for layer in graph.growable]
        consumers = [self.net.get_layer(graph.consumer_of[layer.name].name).kernel for layer in graph.growable]
        with tf.GradientTape() as tape:
            logits = self.net(self.x, training=False)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(self.y, logits, from_logits=True))
        grads = tape.gradient(loss, producers + consumers)
        return [g.numpy() for g in grads[:len(producers)]], [g.numpy() for g in grads[len(producers):]]

    def new_scores(self, step) -> list[np.ndarray]:
        """Per layer, the loss decrease of each new candidate with outgoing weights of norm ``step``."""
        self._set_split(None, 0.0)
        _, consumer_grads = self._gradients()
        scores = []
        for layer, grad, o, p in zip(self.graph.growable, consumer_grads, self.old, self.pool):
            width = self.net.get_layer(layer.name).kernel.shape[-1]
            rows = np.sqrt(np.square(grad.reshape(-1, width, grad.shape[-1])).sum(axis=(0, 2)))
            scores.append(step * rows[width - p:])
        return scores

    def split_scores(self, step, steps, rng):
        """Per layer, the loss decrease of splitting each neuron along its direction, and the directions.

        A direction ``v`` covers the incoming weights from the existing input channels (shape
        ``[..., inputs, o]``, unit norm per neuron)."""
        if not self.split:
            return [np.zeros(0) for _ in self.old], None
        existing = [t[..., r, :o] for t, r, o in zip(self.theta, self.rows, self.old)]
        directions = [_unit(rng.normal(size=e.shape)) for e in existing]
        for it in range(steps + 1):
            self._set_split(directions, step)
            producer_grads, _ = self._gradients()
            diffs = [g[..., r, :o] - g[..., r, o:2 * o] for g, r, o in zip(producer_grads, self.rows, self.old)]
            if it == steps:
                return [-step * _norms(e) * _dot(d, v) / 2
                        for e, d, v in zip(existing, diffs, directions)], directions
            directions = [_unit(v - _unit(d)) for v, d in zip(directions, diffs)]

    def _set_split(self, directions, scale):
        """Existing neurons get ``θ + scale‖θ‖v``, their copies ``θ - scale‖θ‖v`` (``v = 0`` when None)."""
        if not self.split:
            return
        for i, layer in enumerate(self.graph.growable):
            values, rows, o = self.theta[i].copy(), self.rows[i], self.old[i]
            if directions is not None:
                shift = scale * _norms(values[..., rows, :o]) * directions[i]
                values[..., rows, :o] += shift
                values[..., rows, o:2 * o] -= shift
            self.net.get_layer(layer.name).kernel.assign(values)

    def materialise(self, chosen, directions, noise, seed):
        """The grown model: existing neurons, the chosen splits (copies ``± noise‖θ‖v``) and new neurons
        (incoming and per-channel weights taken from the probe)."""
        graph, widths, maps = self.graph, [], {}
        for layer, o, splits, news in zip(graph.growable, self.old, chosen["split"], chosen["new"]):
            splits, news = np.sort(np.asarray(splits, np.int64)), np.sort(np.asarray(news, np.int64))
            maps[layer.name] = np.concatenate([np.arange(o), splits, -np.ones(len(news), np.int64)])
            widths.append(o + len(splits) + len(news))
        grown = build_widened(self.model, widths, seed)
        channel_maps = carry(self.model, grown, maps)
        copies = [o if self.split else 0 for o in self.old]
        for i, (layer, o, c, splits, news) in enumerate(zip(graph.growable, self.old, copies, chosen["split"],
                                                            chosen["new"])):
            splits, news = np.sort(np.asarray(splits, np.int64)), np.sort(np.asarray(news, np.int64))
            target_new = np.arange(o + len(splits), widths[i])
            probe_new = o + c + news
            self._take(grown, layer, target_new, probe_new, channel_maps)
            if len(splits) and directions is not None and noise:
                kernel = grown.get_layer(layer.name).kernel
                values = kernel.numpy()
                rows = _existing_rows(channel_maps[graph.inputs[layer.name][0]])
                theta = values[..., rows, :][..., splits]
                shift = noise * _norms(theta) * directions[i][..., splits]
                block = values[..., rows, :]
                block[..., splits] = theta + shift
                block[..., o:o + len(splits)] = theta - shift
                values[..., rows, :] = block
                kernel.assign(values)
        return grown

    def _take(self, grown, layer, target_cols, probe_cols, channel_maps):
        """Copy new channels' incoming weights (from the existing input channels; zero from the others)
        and their per-channel weights (bias, BatchNorm, depthwise kernels) from the probe."""
        if not len(target_cols):
            return
        source = self.graph.inputs[layer.name][0]
        grown_rows, probe_rows = _existing_rows(channel_maps[source]), _existing_rows(self.channel_maps[source])
        for name in [layer.name] + [p.name for p in self.graph.path(layer)]:
            src, dst = self.net.get_layer(name), grown.get_layer(name)
            for s, d in zip(src.weights, dst.weights):
                values, given = d.numpy(), s.numpy()
                if name == layer.name and d.ndim > 1:
                    values[..., target_cols] = 0.0
                    block = values[..., grown_rows, :]
                    block[..., target_cols] = given[..., probe_rows, :][..., probe_cols]
                    values[..., grown_rows, :] = block
                else:
                    axis = -2 if d.ndim == 4 else 0
                    moved = np.moveaxis(values, axis, 0)
                    moved[target_cols] = np.moveaxis(given, axis, 0)[probe_cols]
                    values = np.moveaxis(moved, 0, axis)
                d.assign(values)


def _check_target(graph, target_params):
    current = graph.param_count(graph.widths())
    if current > target_params:
        raise KerasEdgeError(
            f"the model already has {current} weights, more than the growth target {target_params}; "
            "raise plugins.osg.target_params or start from a smaller model")


def _fresh(old: int, new: int) -> np.ndarray:
    return np.concatenate([np.arange(old), -np.ones(new - old, np.int64)])


def _first_copies(channel_map):
    """Channels that are the first to copy their source channel (the existing ones, not split copies or new)."""
    first = np.zeros(len(channel_map), bool)
    _, index = np.unique(channel_map, return_index=True)
    first[index] = True
    return first & (channel_map >= 0)


def _existing_rows(channel_map):
    """Indices of the channels that are the source's own (first copies), ordered by source channel."""
    rows = np.flatnonzero(_first_copies(channel_map))
    return rows[np.argsort(channel_map[rows])]


def _norms(kernel):
    """Per output channel (last axis), the norm of its incoming weights."""
    return np.sqrt(np.square(kernel.reshape(-1, kernel.shape[-1])).sum(axis=0))


def _unit(v):
    return v / np.maximum(_norms(v), 1e-12)


def _dot(a, b):
    return (a.reshape(-1, a.shape[-1]) * b.reshape(-1, b.shape[-1])).sum(axis=0)
