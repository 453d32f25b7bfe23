"""The compiled steps of the current model: one train step per selection structure
(reused, never retraced for new mask values), one eval step, and the XLA choice."""

from __future__ import annotations

import tensorflow as tf

from keras_edge import _compat
from keras_edge.protocols import JitAware
from keras_edge.step import Selection, make_eval_step, make_train_step


class StepCache:
    """Compiled steps for one (model, optimizer); ``reset`` when either changes."""

    def __init__(self, strategy, loss_terms):
        self.strategy, self.loss_terms = strategy, loss_terms
        self.model = self.optimizer = self.train = None
        self.sampling = False
        self._steps: dict = {}
        self._eval = None

    def reset(self, model, optimizer, train, sampling: bool) -> None:
        """Forget the compiled steps: a new model, optimizer or stage (``train`` config)."""
        self.model, self.optimizer, self.train, self.sampling = model, optimizer, train, sampling
        self._steps, self._eval = {}, None

    def train_step(self, masks):
        """The compiled train step for this selection; same structure, same step."""
        selection = Selection(self.model, masks)
        if selection.key not in self._steps:
            with self.strategy.scope():  # mask variables live on every replica
                self._steps[selection.key] = (selection, make_train_step(
                    self.model, self.optimizer, selection, self.loss_terms, self.train.label_smoothing,
                    self.jit_compile(), self.strategy))
        cached, step = self._steps[selection.key]
        cached.update_masks(selection)
        return step

    def eval_step(self):
        if self._eval is None:
            self._eval = make_eval_step(self.model, self.jit_compile())
        return self._eval

    def jit_compile(self) -> bool:
        """XLA as the recipe says; "auto" uses it on GPUs, when no subnets are sampled.

        On CPUs XLA made the steps slower than TensorFlow's oneDNN kernels
        (tools/bench_loop.py: Keras fit 8.7 s per epoch without XLA, 16 s with it).
        """
        setting = self.train.jit_compile
        if setting != "auto":
            return setting
        if self.train.deterministic or self.sampling or not tf.config.list_logical_devices("GPU"):
            return False  # determinism: XLA lacks deterministic kernels; subnets: their shapes vary
        return all(layer.supports_jit for layer in _compat.all_layers(self.model) if isinstance(layer, JitAware))
