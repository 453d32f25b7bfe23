"""Greedy fill: the classifier first, then neurons in rank order while the budget holds."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np

from keras_edge.errors import RecipeError
from keras_edge_neq.budget import BudgetOptions


@dataclasses.dataclass(frozen=True)
class FillOptions(BudgetOptions):
    """Budget options of the plugins that fill the budget neuron by neuron."""

    fill: typing.Literal["stop", "skip"] = "stop"
    """Greedy fill: stop at the first neuron that does not fit (the paper's cumulative cost
    and the authors' code), or skip it and try the next ones (uses the budget fully)."""


def candidates(layers) -> tuple[np.ndarray, np.ndarray]:
    """(layer index, neuron index) of every neuron outside the classifier, in model order."""
    pairs = [(i, n) for i, layer in enumerate(layers) if not layer.is_classifier for n in range(layer.units)]
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def greedy_fill(layers, order, cost_model, limit: float, fill: str = "stop", where: str = "budget") -> dict:
    """Select the classifier and then the neurons ``order`` lists (an index into
    ``candidates(layers)``) while the total cost stays within ``limit``.

    Returns ``{layer name: bool array of its selected neurons}``. Raises a
    ``RecipeError`` naming ``where`` when the classifier alone does not fit (it costs
    nothing under the ``conv`` accounting).
    """
    costs = [cost_model.neuron_cost(layer) for layer in layers]
    selected = {layer.name: np.zeros(layer.units, bool) for layer in layers}
    spent = 0.0
    for i, layer in enumerate(layers):
        if layer.is_classifier:
            spent += layer.units * costs[i][0] + costs[i][1]
            selected[layer.name][:] = True
    if spent > limit:
        raise RecipeError(f"{where}: {limit:.0f} {cost_model.unit} is less than the classifier alone needs "
                          f"({spent:.0f} {cost_model.unit}); raise the budget to at least that")
    opened = {name for name, s in selected.items() if s.any()}
    layer_index, neuron_index = candidates(layers)
    for k in np.asarray(order, np.int64):
        layer = layers[layer_index[k]]
        per_neuron, first = costs[layer_index[k]]
        cost = per_neuron + (first if layer.name not in opened else 0.0)
        if spent + cost <= limit:
            spent += cost
            selected[layer.name][neuron_index[k]] = True
            opened.add(layer.name)
        elif fill == "stop":
            break
    return selected
