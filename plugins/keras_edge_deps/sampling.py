"""What the subnet samplers share: the supernet's search space and a seeded RNG."""

from __future__ import annotations

import numpy as np

from keras_edge import hookimpl
from keras_edge.errors import RecipeError


class SubnetSampler:
    """Base of the ``deps``, ``bignas`` and ``ofa`` plugins (one instance per run).

    The RNG is seeded from ``train.seed`` and saved with checkpoints, so a resumed run
    samples the same subnets.
    """

    name = "sampler"
    uses_options = ("supernet",)
    """The run's headline evaluates subnets with ``[plugins.supernet]``'s settings."""

    def __init__(self):
        self.rng = None

    def space(self, ctx):
        space = getattr(ctx.model, "space", None)
        if space is None:
            raise RecipeError(f"plugins.{self.name}: the model {ctx.model.name!r} is not a supernet; "
                              'set [model] name = "elastic_mobilenet"')
        return space

    def generator(self, ctx) -> np.random.Generator:
        if self.rng is None:
            self.rng = np.random.default_rng([ctx.recipe.train.seed, sum(map(ord, self.name))])
        return self.rng

    @hookimpl
    def on_stage_end(self, ctx, logs):
        """The run's headline is what a user deploys: after the last stage, ``test_accuracy`` is the full
        model's with BatchNorm recalibrated, beside the smallest subnet's (the stored statistics' figure is
        kept as ``test_accuracy_stored_bn``)."""
        if ctx.stage_index != len(ctx.recipe.stages) - 1 or not hasattr(ctx.model, "space"):
            return
        from keras_edge_deps.plugin import Options
        from keras_edge_deps.subnets import headline

        logs["test_accuracy_stored_bn"] = logs["test_accuracy"]
        logs.update(headline(ctx.model, ctx.data, ctx.options_of(self, "supernet") or Options()))

    @hookimpl
    def on_run_end(self, ctx, summary):
        last = summary["stages"].get(ctx.recipe.stages[-1].name, {})
        if "smallest_test_accuracy" in last:
            summary.setdefault("notes", []).append(
                f"BatchNorm recalibrated: full model {last['test_accuracy']:.4f} at {last['largest_macs']:,} MACs, "
                f"smallest subnet {last['smallest_test_accuracy']:.4f} at {last['smallest_macs']:,} MACs "
                f"(stored statistics: {last['test_accuracy_stored_bn']:.4f})")

    @hookimpl
    def state_dict(self, ctx):
        return {"rng": self.generator(ctx).bit_generator.state}

    @hookimpl
    def load_state_dict(self, ctx, state):
        self.generator(ctx).bit_generator.state = state["rng"]
