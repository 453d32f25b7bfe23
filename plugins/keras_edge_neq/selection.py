"""What every selection plugin shares: masks for all trainable weights, the budget check,
BatchNorm under the accounting, per-epoch logs and the ``selection.npz`` file the
TFLite export reads."""

from __future__ import annotations

import numpy as np

from keras_edge import hookimpl
from keras_edge.errors import KerasEdgeError
from keras_edge_neq.budget import CostModel
from keras_edge_neq.neurons import batchnorm_layers, in_scope, neuron_layers


class SelectionPlugin:
    """Base of the selection plugins; a subclass sets ``name`` and implements ``choose``.

    Weights that ``choose`` does not name are frozen (the loop's default is trainable).
    Under ``accounting = "conv"`` every BatchNorm scale and shift trains, outside the budget.
    """

    name = "selection"
    budgeted = True
    """Whether the plugin has budget options (``BudgetOptions``) to respect."""

    def __init__(self):
        self._layers = None
        self.masks = None
        self.logs = {}
        self._statistics = []

    def choose(self, ctx, model, layers, cost_model, limit, options) -> dict:
        """``{variable.path: mask}`` of the weights that may move in the coming epoch (``options``: this
        plugin's own)."""
        raise NotImplementedError

    def may_exceed_budget(self, ctx, options) -> bool:
        """True for an epoch that is deliberately not budgeted (see ``neq_velocity``)."""
        return False

    def layers(self, model, options):
        """The neuron layers in scope: the classifier and the candidate layers."""
        if self._layers is None or self._layers[0] is not model:
            self._layers = (model, neuron_layers(model))
        return in_scope(self._layers[1], options.candidates) if options else self._layers[1]

    @hookimpl
    def on_stage_start(self, ctx):
        self.__init__()

    @hookimpl
    def select_trainable(self, ctx, model, options):
        layers = self.layers(model, options)
        cost_model = CostModel.for_stage(options, ctx.stage)
        limit = cost_model.limit(options, model, layers) if options else float("inf")
        masks = {v.path: np.float32(0.0) for v in model.trainable_variables}
        masks.update(self.choose(ctx, model, layers, cost_model, limit, options))
        if options and options.accounting == "conv":
            masks.update({v.path: np.float32(1.0) for bn in batchnorm_layers(model) for v in (bn.gamma, bn.beta)
                          if v is not None})
        cost = cost_model.selection_cost(model, layers, masks)
        if cost > limit and not self.may_exceed_budget(ctx, options):
            raise KerasEdgeError(f"{self.name}: the selection costs {cost:.0f} {cost_model.unit}, over the "
                                 f"budget of {limit:.0f}; this is a bug, please report it")
        counted = CostModel("params", accounting=cost_model.accounting)
        params = counted.selection_cost(model, layers, masks)
        self.masks = masks
        self.logs = {f"{self.name}_params": params,
                     f"{self.name}_fraction": params / counted.denominator(model, layers),
                     f"{self.name}_trained_params": CostModel("params", accounting="all").selection_cost(
                         model, layers, masks)}
        if cost_model.unit == "bytes":
            self.logs[f"{self.name}_bytes"] = cost
        if options and options.frozen_bn_statistics == "keep":
            self._statistics = frozen_statistics(layers, masks)
        return masks

    @hookimpl
    def on_epoch_end(self, ctx, logs):
        restore_statistics(self._statistics)
        logs.update(self.logs)

    @hookimpl
    def on_stage_end(self, ctx, logs):
        logs.update(self.logs)
        if self.masks is not None and ctx.run_dir is not None:
            write_selection(ctx.run_dir / "selection.npz", ctx.model, self.masks)


def frozen_statistics(layers, masks) -> list:
    """``(variable, frozen channels, saved values)`` of the BatchNorm moving statistics of
    every channel whose neuron is frozen by ``masks``."""
    saved = []
    for layer in layers:
        if layer.batchnorm is None:
            continue
        frozen = ~layer.selected_outputs(masks.get(layer.kernel.path, 0.0))
        if frozen.any():
            for variable in (layer.batchnorm.moving_mean, layer.batchnorm.moving_variance):
                saved.append((variable, frozen, np.asarray(variable.numpy()).copy()))
    return saved


def restore_statistics(saved: list) -> None:
    """Put the saved statistics of frozen channels back (training moved them)."""
    for variable, frozen, values in saved:
        variable.assign(np.where(frozen, values, variable.numpy()))


def write_selection(path, model, masks) -> None:
    """Save full-shape 0/1 uint8 masks keyed by ``variable.path``."""
    arrays = {v.path: np.broadcast_to(np.asarray(masks[v.path]) != 0, v.shape).astype(np.uint8)
              for v in model.trainable_variables}
    np.savez_compressed(path, **arrays)
