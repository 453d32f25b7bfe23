"""The ``osg`` plugin: One-Shot Growth (and m-shot growth) of the network's width."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from keras_edge import hookimpl
from keras_edge.data import to_float
from keras_edge.errors import RecipeError
from keras_edge.models import count_params
from keras_edge_gearnn.growth import fit_widths, grow_to, param_count, shot_targets, widths_of

BYTES_PER_WEIGHT = 4
"""float32 weights: a byte target is divided by this to get a weight count."""


@dataclasses.dataclass(frozen=True)
class Options:
    """Options of ``[plugins.osg]``."""

    gamma: float = 2.0
    """Width growth ratio: final widths are the initial ones times gamma (unless a target is set)."""
    target_params: int = 0
    """Grow to the most weights not above this (BatchNorm statistics included); 0: use gamma."""
    target_bytes: int = 0
    """Grow to the most float32 weight bytes not above this (the device memory limit); 0: use gamma."""
    grow_after: int = 1
    """Epochs of the stage trained at the initial size before the first growth step."""
    shots: int = 1
    """Growth steps reaching the final size: 1 is One-Shot Growth, more is m-shot growth
    (weight counts geometric between the start and the target)."""
    every: int = 1
    """Epochs between two growth steps when shots > 1."""
    strategy: Literal["firefly", "split", "uniform", "random"] = "firefly"
    """Where neurons are added and how they are initialised (see the method card)."""
    candidates: int = 4
    """New-neuron candidates drawn per neuron a uniform growth would add to a layer."""
    step: float = 0.1
    """Step size at which new-neuron and split candidates are compared (predicted loss decrease)."""
    split_steps: int = 2
    """Normalised gradient steps that refine each split direction before it is scored."""
    split_noise: float = 1e-5
    """Split copies get incoming weights θ ± split_noise·‖θ‖·v (breaks their symmetry; keeps the function)."""
    examples: int = 256
    """Training examples used to score candidates and calibrate BatchNorm statistics."""
    seed: int = 0
    """Seed of the new neurons' weights, the split choices and the calibration examples."""

    def __post_init__(self):
        if self.gamma <= 1:
            raise RecipeError(f"plugins.osg.gamma: must be greater than 1 (a growth), got {self.gamma}; use e.g. 2.0")
        if self.target_params and self.target_bytes:
            raise RecipeError("plugins.osg: set target_params or target_bytes, not both; remove one")
        if self.step <= 0 or self.split_noise < 0 or self.split_steps < 0:
            raise RecipeError("plugins.osg: step must be positive, split_noise and split_steps not negative")
        for key in ("grow_after", "shots", "every", "candidates", "examples"):
            if getattr(self, key) < 1:
                raise RecipeError(f"plugins.osg.{key}: must be at least 1, got {getattr(self, key)}")
        if min(self.target_params, self.target_bytes) < 0:
            raise RecipeError("plugins.osg: targets must be positive (or 0 for none)")

    @property
    def target(self) -> int:
        """The weight-count target, 0 when growth is by gamma."""
        return self.target_params or self.target_bytes // BYTES_PER_WEIGHT


class OneShotGrowth:
    """Grows the width of the model ``shots`` times, starting after ``grow_after`` epochs."""

    Options = Options

    def __init__(self):
        self.plan = None
        self.shots_done = 0

    @hookimpl
    def on_grow(self, ctx, model, options):
        o = options
        done_epochs = ctx.epoch + 1
        due = done_epochs >= o.grow_after and (done_epochs - o.grow_after) % o.every == 0
        if self.shots_done >= o.shots or not due:
            return None
        if self.plan is None:
            start = widths_of(model)
            final = o.target or param_count(model, [max(w, round(w * o.gamma)) for w in start])
            fit_widths(model, final)  # a target below the current size is an error
            self.plan = shot_targets(param_count(model, start), final, o.shots)
        rng = np.random.default_rng(o.seed + self.shots_done)
        pick = rng.choice(len(ctx.data.x_train), min(o.examples, len(ctx.data.x_train)), replace=False)
        x = to_float(ctx.data.x_train[pick])
        grown, report = grow_to(model, self.plan[self.shots_done], o.strategy, x, ctx.data.y_train[pick],
                                o.candidates, o.seed + self.shots_done, o.step, o.split_steps, o.split_noise)
        self.shots_done += 1
        ctx.scratch.setdefault("osg", []).append(
            {"epoch": ctx.epoch, **report, "params": count_params(grown)})
        return grown

    @hookimpl
    def on_stage_end(self, ctx, logs):
        if ctx.scratch.get("osg"):
            logs["osg_params"] = ctx.scratch["osg"][-1]["params"]

    @hookimpl
    def state_dict(self, ctx):
        return {"plan": self.plan, "shots_done": self.shots_done, "shots": ctx.scratch.get("osg", [])}

    @hookimpl
    def load_state_dict(self, ctx, state):
        self.plan, self.shots_done = state["plan"], state["shots_done"]
        if state["shots"]:
            ctx.scratch["osg"] = state["shots"]
