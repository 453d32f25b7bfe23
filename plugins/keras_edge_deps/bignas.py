"""BigNAS (Yu et al. 2020): sandwich rule from the first step with in-place distillation."""

from __future__ import annotations

import dataclasses

from keras_edge import hookimpl
from keras_edge.context import SubnetSample
from keras_edge.errors import RecipeError
from keras_edge_deps.sampling import SubnetSampler


@dataclasses.dataclass(frozen=True)
class Options:
    num_subnets: int = 4
    """Networks per step: largest + smallest + num_subnets-2 random (BigNAS: 4)."""
    distill_weight: float = 1.0
    """Weight of KL(largest || subnet) in each smaller subnet's loss (in-place distillation)."""
    subnet_ce_weight: float = 0.0
    """Weight of the label cross-entropy of the smaller subnets (BigNAS: 0, KD only)."""

    def __post_init__(self):
        if self.num_subnets < 2:
            raise RecipeError(f"plugins.bignas.num_subnets: {self.num_subnets} < 2; use 4")


class BignasPlugin(SubnetSampler):
    """Every step trains the largest, the smallest and random subnets (the sandwich rule)."""

    name = "bignas"
    Options = Options

    @hookimpl
    def sample_subnets(self, ctx, options):
        space = self.space(ctx)
        rng = self.generator(ctx)
        configs = [space.smallest()] + [space.sample(rng) for _ in range(options.num_subnets - 2)]
        return [SubnetSample()] + [SubnetSample(c, 1.0, options.subnet_ce_weight, options.distill_weight)
                                   for c in configs]
