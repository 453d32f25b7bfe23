"""Random selection under a budget (the budget paper's baseline): the velocity plugin's
greedy fill over a fresh random order of the neurons every epoch."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np

from keras_edge_neq.fill import FillOptions, candidates, greedy_fill
from keras_edge_neq.neurons import neuron_masks
from keras_edge_neq.selection import SelectionPlugin


@dataclasses.dataclass(frozen=True)
class RandomOptions(FillOptions):
    """Budget of the random selection."""

    plugin: typing.ClassVar[str] = "neq_random"


def random_masks(ctx, model, layers, cost_model, limit, options, where) -> dict:
    """Masks of a random greedy fill, seeded by the recipe seed, stage and epoch."""
    rng = np.random.default_rng([ctx.stage.train.seed, ctx.stage_index, ctx.epoch])
    order = rng.permutation(len(candidates(layers)[0]))
    return neuron_masks(layers, greedy_fill(layers, order, cost_model, limit, options.fill, where))


class NeqRandom(SelectionPlugin):
    """Random neurons, re-drawn every epoch, up to the budget."""

    name = "neq_random"
    Options = RandomOptions

    def choose(self, ctx, model, layers, cost_model, limit, options):
        return random_masks(ctx, model, layers, cost_model, limit, options,
                            f"plugins.{self.name}.budget")
