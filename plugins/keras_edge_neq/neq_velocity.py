"""NEq-inspired selection under a budget (Quelennec et al. 2023, arXiv 2312.05282).

Every epoch, the neurons' velocities are measured on a fixed velocity set (see
``velocity.py``), neurons are ranked by ``|velocity| / cost`` (the authors' code) or
``|velocity|`` and added greedily, after the classifier, while the selection fits the
budget. The first epoch has no velocity yet and uses ``first_selection``.
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np

from keras_edge import hookimpl
from keras_edge.errors import RecipeError
from keras_edge_neq.fill import FillOptions, candidates, greedy_fill
from keras_edge_neq.neurons import neuron_masks
from keras_edge_neq.random_selection import random_masks
from keras_edge_neq.selection import SelectionPlugin
from keras_edge_neq.sparse_update import scheme_masks
from keras_edge_neq.velocity import VelocityTracker


@dataclasses.dataclass(frozen=True)
class VelocityOptions(FillOptions):
    """Budget and velocity settings."""

    plugin: typing.ClassVar[str] = "neq_velocity"

    mu_eq: float = 0.5
    """Velocity momentum mu_eq of NEq (paper and reference default 0.5)."""
    velocity_samples: int = 128
    """How many validation examples form the fixed velocity set."""
    rank: typing.Literal["velocity_per_cost", "velocity"] = "velocity_per_cost"
    """Rank neurons by |velocity| / cost of the neuron (the authors' code) or by |velocity|."""
    recurrence: typing.Literal["code", "paper"] = "code"
    """Velocity recurrence: the authors' code (default) or NEq's equation; see velocity.py."""
    velocity_at: typing.Literal["layer", "batchnorm"] = "layer"
    """Measure a neuron's output before its BatchNorm (the authors' hooks) or after it."""
    first_selection: typing.Literal["random", "sparse_update", "full"] = "random"
    """First epoch (no velocity yet): a random fill; the scheme of ``[plugins.sparse_update]``
    (it must fit this budget); or every weight, an unbudgeted warm-up epoch."""

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.mu_eq < 1:
            raise RecipeError(f"plugins.neq_velocity.mu_eq: {self.mu_eq} is outside [0, 1); use e.g. 0.5")
        if self.velocity_samples < 1:
            raise RecipeError(f"plugins.neq_velocity.velocity_samples: {self.velocity_samples} must be at least 1")


class NeqVelocity(SelectionPlugin):
    """The fastest neurons (largest |velocity|) that fit the budget, re-selected every epoch."""

    name = "neq_velocity"
    Options = VelocityOptions
    uses_options = ("sparse_update",)
    """``first_selection = "sparse_update"`` reads the scheme of ``[plugins.sparse_update]``."""

    def __init__(self):
        super().__init__()
        self.tracker = None

    def may_exceed_budget(self, ctx, options):
        return ctx.epoch == 0 and options.first_selection == "full"

    def choose(self, ctx, model, layers, cost_model, limit, options):
        where = f"plugins.{self.name}.budget"
        body = [layer for layer in layers if not layer.is_classifier]
        if self.tracker is None:
            self.tracker = VelocityTracker(options.mu_eq, options.recurrence, options.velocity_at)
        velocity = self.tracker.update(model, body, velocity_set(ctx, options.velocity_samples))
        if velocity is None:
            return self.first(ctx, model, layers, cost_model, limit, options, where)
        score = rank_scores(layers, velocity, cost_model, options.rank)
        order = np.argsort(-score, kind="stable")
        return neuron_masks(layers, greedy_fill(layers, order, cost_model, limit, options.fill, where))

    def first(self, ctx, model, layers, cost_model, limit, options, where):
        if options.first_selection == "full":
            return {v.path: np.float32(1.0) for v in model.trainable_variables}
        if options.first_selection == "sparse_update":
            masks = scheme_masks(layers, ctx.options_of(self, "sparse_update"))
            cost = cost_model.selection_cost(model, layers, masks)
            if cost > limit:
                raise RecipeError(f"{where}: the first epoch's [plugins.sparse_update] scheme costs {cost:.0f} "
                                  f"{cost_model.unit}, over this budget of {limit:.0f}; give a smaller scheme")
            return masks
        return random_masks(ctx, model, layers, cost_model, limit, options, where)

    @hookimpl
    def state_dict(self):
        return None if self.tracker is None else self.tracker.state()

    @hookimpl
    def load_state_dict(self, state):
        self.tracker = VelocityTracker.load(state)


def rank_scores(layers, velocity: dict, cost_model, rank: str) -> np.ndarray:
    """Score of every candidate neuron (``candidates(layers)`` order): ``|velocity|``, divided
    by the neuron's cost for ``velocity_per_cost``. Dense and convolution neurons are on
    different scales, so when both are candidates each kind is divided by its mean score."""
    layer_index, _ = candidates(layers)
    score = np.abs(np.concatenate([velocity[layer.name] for layer in layers if not layer.is_classifier]))
    if rank == "velocity_per_cost":
        costs = np.array([cost_model.neuron_cost(layers[i])[0] for i in layer_index])
        score = score / np.maximum(costs, 1e-12)
    dense = np.array([layers[i].is_dense for i in layer_index], bool)
    if dense.any() and not dense.all():
        for kind in (dense, ~dense):
            mean = score[kind].mean()
            score[kind] = score[kind] / mean if mean > 0 else score[kind]
    return score


def velocity_set(ctx, samples: int) -> np.ndarray:
    """The first ``samples`` validation images as float32 in [0, 1]."""
    images = ctx.data.x_val[:samples]
    if len(images) == 0:
        raise RecipeError("plugins.neq_velocity: the stage has no validation examples to measure velocity on; "
                          "set data.validation_fraction above 0")
    return images.astype(np.float32) / 255.0
