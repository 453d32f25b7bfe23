"""DεpS (Annavajjala et al.): delayed shrinking, ε-warmed subnets, in-place KD from the warmed-up full model."""

from __future__ import annotations

import dataclasses

from keras_edge import hookimpl
from keras_edge.context import SubnetSample
from keras_edge.errors import RecipeError
from keras_edge_deps.reorganize import reorganize
from keras_edge_deps.sampling import SubnetSampler


@dataclasses.dataclass(frozen=True)
class Options:
    warmup_fraction: float = 0.5
    """P_warmup: fraction of the stage's epochs in which the full model trains alone (paper: 50%)."""
    num_subnets: int = 4
    """k: networks per step once shrinking starts: full + smallest + k-2 random (reference: 4)."""
    epsilon_start: float = 1e-4
    """ε at the first shrinking step (paper: 1e-4)."""
    epsilon_epochs: float = 5.0
    """Epochs over which ε rises linearly, per step, to 1 (reference code: ``smallnet_warmup 5``)."""
    epsilon_min_steps: int = 200
    """Floor of the ramp's length in steps, so that a short schedule still ramps (ours, not the reference's)."""
    reorganize: bool = True
    """Sort expansion channels by importance when shrinking starts (reference: ``--reorganize_weights``)."""
    distill_weight: float = 1.0
    """Weight of KL(full || subnet) in each subnet's loss (in-place distillation)."""
    subnet_ce_weight: float = 0.0
    """Weight of the label cross-entropy in each subnet's loss (reference: 0, KD only)."""

    def __post_init__(self):
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise RecipeError(f"plugins.deps.warmup_fraction: {self.warmup_fraction} is outside [0, 1); use 0.5")
        if self.num_subnets < 2:
            raise RecipeError(f"plugins.deps.num_subnets: {self.num_subnets} < 2; use 4 (full + smallest + 2 random)")
        if not 0.0 < self.epsilon_start <= 1.0:
            raise RecipeError(f"plugins.deps.epsilon_start: {self.epsilon_start} is outside (0, 1]; use 1e-4")
        if self.epsilon_epochs < 0:
            raise RecipeError(f"plugins.deps.epsilon_epochs: {self.epsilon_epochs} < 0; use 5")
        if self.epsilon_min_steps < 0:
            raise RecipeError(f"plugins.deps.epsilon_min_steps: {self.epsilon_min_steps} < 0; use 200")


def warmup_epochs(options: Options, epochs: int) -> int:
    """Epochs of full-model warmup before shrinking starts."""
    return int(round(options.warmup_fraction * epochs))


def ramp_steps(options: Options, steps_per_epoch: int) -> int:
    """Length of the ε ramp in steps: ``epsilon_epochs`` epochs, at least ``epsilon_min_steps``."""
    if options.epsilon_epochs == 0:
        return 0
    return max(int(round(options.epsilon_epochs * steps_per_epoch)), options.epsilon_min_steps)


def epsilon(options: Options, shrink_step: int, steps_per_epoch: int) -> float:
    """ε at the ``shrink_step``-th step since shrinking started (0 = first)."""
    ramp = ramp_steps(options, steps_per_epoch)
    if shrink_step >= ramp:
        return 1.0
    return min(1.0, options.epsilon_start + (1.0 - options.epsilon_start) * shrink_step / ramp)


class DepsPlugin(SubnetSampler):
    """Full model alone for P_warmup, then full + smallest + random subnets with gradients × ε_t."""

    name = "deps"
    Options = Options

    def __init__(self):
        super().__init__()
        self.epsilon = 0.0

    @hookimpl
    def sample_subnets(self, ctx, options):
        space = self.space(ctx)
        shrink_step = ctx.step - warmup_epochs(options, ctx.epochs) * ctx.steps_per_epoch
        if shrink_step < 0:
            self.epsilon = 0.0
            return [SubnetSample()]
        self.epsilon = epsilon(options, shrink_step, ctx.steps_per_epoch)
        rng = self.generator(ctx)
        configs = [space.smallest()] + [space.sample(rng) for _ in range(options.num_subnets - 2)]
        return [SubnetSample()] + [SubnetSample(c, self.epsilon, options.subnet_ce_weight, options.distill_weight)
                                   for c in configs]

    @hookimpl
    def on_epoch_start(self, ctx, options):
        if options.reorganize and ctx.epoch == warmup_epochs(options, ctx.epochs):
            reorganize(ctx.model, optimizer=ctx.optimizer)

    @hookimpl
    def on_epoch_end(self, ctx, logs):
        logs["deps_epsilon"] = self.epsilon
