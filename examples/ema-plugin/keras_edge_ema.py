"""An exponential moving average (EMA) of the weights, as a third-party keras-edge plugin.

After every optimizer step the average moves towards the model's weights
(``on_step_end``); validation, test and the saved ``model.keras`` use the average
(``evaluation_weights``), while training goes on with the raw weights. The average is
part of every checkpoint (``state_dict``), so ``--resume`` continues it. Enable it with
``plugins.enable = ["ema"]``.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_edge import hookimpl


class WeightEMA:
    @dataclasses.dataclass(frozen=True)
    class Options:
        decay: float = 0.99
        """Weight of the old average at each step (the average spans about 1 / (1 - decay) steps)."""

        def __post_init__(self):
            if not 0 <= self.decay < 1:
                raise ValueError(f"decay = {self.decay} must be in [0, 1)")

    def __init__(self):
        self.average = None

    def _match(self, model):
        """Start (or restart, after growth changed the shapes) the average at the model's weights."""
        shapes = [tuple(w.shape) for w in model.weights]
        if self.average is None or [tuple(a.shape) for a in self.average] != shapes:
            self.average = [tf.Variable(w, trainable=False) for w in model.weights]

    @hookimpl
    def on_stage_start(self, ctx):
        self._match(ctx.model)

    @hookimpl
    def on_step_end(self, ctx, options):
        self._match(ctx.model)
        for average, weight in zip(self.average, ctx.model.weights):
            average.assign(options.decay * average + (1.0 - options.decay) * tf.cast(weight, average.dtype))

    @hookimpl
    def evaluation_weights(self, ctx):
        self._match(ctx.model)
        return [a.numpy() for a in self.average]

    @hookimpl
    def state_dict(self):
        return None if self.average is None else {"average": [a.numpy() for a in self.average]}

    @hookimpl
    def load_state_dict(self, state):
        self.average = [tf.Variable(np.asarray(a), trainable=False) for a in state["average"]]
