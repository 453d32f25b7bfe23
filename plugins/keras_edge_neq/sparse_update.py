"""Sparse Update (Lin et al. 2022, "On-Device Training Under 256KB Memory"): a static scheme.

Biases of the last ``bias_layers`` layers (before the classifier) are updated; the
layers in ``weight_layers`` also update the weights that read a share
``weight_ratios[i]`` of their input channels, those with the largest weight norm
(the reference's ``magnitude+`` criterion); the classifier is always updated. A layer
without a bias uses the shift (beta) of the BatchNorm that follows it, which is what
its bias becomes once BatchNorm is folded. The scheme is fixed for the whole stage.
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np

from keras_edge import hookimpl
from keras_edge.errors import RecipeError
from keras_edge_neq.budget import BudgetOptions
from keras_edge_neq.selection import SelectionPlugin


@dataclasses.dataclass(frozen=True)
class SchemeOptions(BudgetOptions):
    """A Sparse Update scheme, checked against the budget."""

    plugin: typing.ClassVar[str] = "sparse_update"

    budget: float = 1.0
    """The scheme must fit this budget (default: no limit beyond the whole model)."""
    bias_layers: int = 2
    """Update the biases of this many layers before the classifier, counted from the end."""
    weight_layers: tuple[str, ...] = ()
    """Names of the layers whose weights are (partly) updated."""
    weight_ratios: tuple[float, ...] = ()
    """Share of input channels updated in each of ``weight_layers``, in (0, 1]."""

    def __post_init__(self):
        super().__post_init__()
        if self.bias_layers < 0:
            raise RecipeError(f"plugins.{self.plugin}.bias_layers: {self.bias_layers} is negative; use 0 or more")
        if len(self.weight_layers) != len(self.weight_ratios):
            raise RecipeError(f"plugins.{self.plugin}.weight_ratios: give one ratio per weight layer "
                              f"({len(self.weight_layers)} layers, {len(self.weight_ratios)} ratios)")
        if any(not 0 < r <= 1 for r in self.weight_ratios):
            raise RecipeError(f"plugins.{self.plugin}.weight_ratios: {list(self.weight_ratios)} must all be "
                              f"in (0, 1]; leave a layer out instead of giving it 0")


def scheme_masks(layers, scheme, where: str = "plugins.sparse_update") -> dict:
    """``{variable.path: mask}`` of a Sparse Update scheme on these layers."""
    body = [layer for layer in layers if not layer.is_classifier]
    names = [layer.name for layer in body]
    unknown = [n for n in scheme.weight_layers if n not in names]
    if unknown:
        raise RecipeError(f"{where}.weight_layers: unknown layers {unknown}; this model's are {names}")
    if scheme.bias_layers > len(body):
        raise RecipeError(f"{where}.bias_layers: {scheme.bias_layers} is more than the model's "
                          f"{len(body)} layers before the classifier; use at most {len(body)}")
    masks = {}
    for layer in layers:
        if layer.is_classifier:
            masks.update(layer.masks(np.ones(layer.units, bool)))
    for layer in body[len(body) - scheme.bias_layers:]:
        shift = layer.bias if layer.bias is not None else layer.beta
        if shift is not None:
            masks[shift.path] = np.float32(1.0)
    for name, ratio in zip(scheme.weight_layers, scheme.weight_ratios):
        layer = body[names.index(name)]
        masks[layer.kernel.path] = input_channel_mask(layer, ratio)
    return masks


def kept_channels(in_channels: int, ratio: float) -> int:
    """Input channels a weight ratio updates (as the reference, rounded down; at least one)."""
    return max(1, int(in_channels * ratio))


def input_channel_mask(layer, ratio: float) -> np.ndarray:
    """Mask (``[1, ..., in_channels, 1]``) of the ``ratio`` input channels with the largest weight norm."""
    kernel = layer.kernel.numpy()
    kernel = kernel.reshape(-1, *kernel.shape[-2:])
    norms = np.sqrt(np.sum(kernel ** 2, axis=(0, 2)))
    keep = kept_channels(layer.in_channels, ratio)
    mask = np.zeros(layer.in_channels, np.float32)
    mask[np.argsort(-norms, kind="stable")[:keep]] = 1.0
    return mask.reshape([1] * (len(layer.kernel.shape) - 2) + [layer.in_channels, 1])


class SparseUpdate(SelectionPlugin):
    """Static Sparse Update scheme; ``keras-edge neq-search`` finds one for a budget."""

    name = "sparse_update"
    Options = SchemeOptions

    def choose(self, ctx, model, layers, cost_model, limit, options):
        if self.masks is None:
            masks = scheme_masks(layers, options)
            cost = cost_model.selection_cost(model, layers, masks)
            if cost > limit:
                raise RecipeError(f"plugins.sparse_update: the scheme costs {cost:.0f} {cost_model.unit}, over "
                                  f"the budget of {limit:.0f}; shrink it or find one with `keras-edge neq-search`")
            return masks
        return self.masks

    @hookimpl
    def register_commands(self, cli):
        from keras_edge_neq.search import search_command

        cli.add_command(search_command)
