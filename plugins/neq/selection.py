"""What every selection plugin shares: masks for all trainable weights, the budget check,
per-epoch logs and the ``selection.npz`` file the TFLite export reads."""

from __future__ import annotations

import numpy as np

from keras_edge import hookimpl
from keras_edge.errors import KerasEdgeError
from keras_edge_neq.budget import CostModel, trainable_params
from keras_edge_neq.neurons import neuron_layers


class SelectionPlugin:
    """Base of the selection plugins; a subclass sets ``name`` and implements ``choose``.

    Weights that ``choose`` does not name are frozen (the loop's default is trainable).
    """

    name = "selection"
    budgeted = True
    """Whether the plugin has budget options (``BudgetOptions``) to respect."""

    def __init__(self):
        self._layers = None
        self.masks = None
        self.logs = {}

    def choose(self, ctx, model, layers, cost_model, limit) -> dict:
        """``{variable.path: mask}`` of the weights that may move in the coming epoch."""
        raise NotImplementedError

    def may_exceed_budget(self, ctx) -> bool:
        """True for an epoch that is deliberately not budgeted (see ``neq_velocity``)."""
        return False

    def layers(self, model):
        if self._layers is None or self._layers[0] is not model:
            self._layers = (model, neuron_layers(model))
        return self._layers[1]

    @hookimpl
    def on_stage_start(self, ctx):
        self.__init__()

    @hookimpl
    def select_trainable(self, ctx, model):
        layers = self.layers(model)
        options = ctx.options[self.name] if self.budgeted else None
        cost_model = CostModel.for_stage(options.budget_unit if options else "params", ctx.stage)
        limit = cost_model.limit(options, model) if options else float("inf")
        masks = {v.path: np.float32(0.0) for v in model.trainable_variables}
        masks.update(self.choose(ctx, model, layers, cost_model, limit))
        cost = cost_model.selection_cost(model, layers, masks)
        if cost > limit and not self.may_exceed_budget(ctx):
            raise KerasEdgeError(f"{self.name}: the selection costs {cost:.0f} {cost_model.unit}, over the "
                                 f"budget of {limit:.0f}; this is a bug, please report it")
        params = CostModel().selection_cost(model, layers, masks)
        self.masks = masks
        self.logs = {f"{self.name}_params": params,
                     f"{self.name}_fraction": params / trainable_params(model)}
        if cost_model.unit == "bytes":
            self.logs[f"{self.name}_bytes"] = cost
        return masks

    @hookimpl
    def on_epoch_end(self, ctx, logs):
        logs.update(self.logs)

    @hookimpl
    def on_stage_end(self, ctx, logs):
        logs.update(self.logs)
        if self.masks is not None and ctx.run_dir is not None:
            write_selection(ctx.run_dir / "selection.npz", ctx.model, self.masks)


def write_selection(path, model, masks) -> None:
    """Save full-shape 0/1 uint8 masks keyed by ``variable.path``."""
    arrays = {v.path: np.broadcast_to(np.asarray(masks[v.path]) != 0, v.shape).astype(np.uint8)
              for v in model.trainable_variables}
    np.savez_compressed(path, **arrays)
