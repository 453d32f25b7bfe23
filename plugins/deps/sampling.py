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
    def state_dict(self, ctx):
        return {"rng": self.generator(ctx).bit_generator.state}

    @hookimpl
    def load_state_dict(self, ctx, state):
        self.generator(ctx).bit_generator.state = state["rng"]
