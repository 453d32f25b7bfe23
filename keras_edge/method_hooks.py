"""The method hooks the loop calls during an epoch, with their results checked:
``select_trainable`` (once per epoch), ``sample_subnets`` (every step) and
``loss_terms`` (traced into the train step)."""

from __future__ import annotations

from keras_edge.context import SubnetSample, checked_samples
from keras_edge.dispatch import checked
from keras_edge.selection import combine_masks


class MethodHooks:
    def __init__(self, hooks, ctx):
        self.hooks, self.ctx = hooks, ctx

    def select_trainable(self) -> dict | None:
        """The AND of every active plugin's masks, or None when no plugin selects."""
        results = self.hooks.each("select_trainable", ctx=self.ctx, model=self.ctx.model)
        return combine_masks(results, self.ctx.model)

    def sample_subnets(self) -> list:
        found = self.hooks.first("sample_subnets", ctx=self.ctx)
        return [SubnetSample()] if found is None else checked_samples(*found)

    def loss_terms(self, batch, outputs, subnet) -> dict:
        """The plugins' loss terms for ``subnet``, whose fields are the step's tensors (never stale)."""
        terms = {}
        for plugin, result in self.hooks.each("loss_terms", ctx=self.ctx, batch=batch, outputs=outputs,
                                              model=self.ctx.model, subnet=subnet):
            terms.update(checked(plugin, "loss_terms", result, dict, "return {name: scalar}"))
        return terms
