"""Which weights may change this epoch: the masks of ``select_trainable``, combined."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_edge.dispatch import checked
from keras_edge.errors import PluginError


def combine_masks(results, model) -> dict | None:
    """AND of the ``(plugin, {variable.path: mask})`` results, checked against ``model``."""
    if not results:
        return None
    names = {v.path for v in model.trainable_variables}
    masks: dict = {}
    for plugin, result in results:
        checked(plugin, "select_trainable", result, dict, "return {variable.path: mask} or None")
        for path, mask in result.items():
            if path not in names:
                raise PluginError(plugin, "select_trainable", f"unknown variable {path!r}; use "
                                  "variable.path of model.trainable_variables")
            mask = np.asarray(mask, np.float32)
            masks[path] = mask if path not in masks else masks[path] * mask
    return masks


class Selection:
    """Masks of the trainable variables for the current epoch.

    Fully frozen variables are left out of the gradient; partially frozen ones keep
    their mask in a ``tf.Variable``, so a new selection with the same structure is
    copied in with no retrace.
    """

    def __init__(self, model, masks: dict | None):
        self.trainable, self._partial = [], []
        for var in model.trainable_variables:
            mask = None if masks is None else masks.get(var.path)
            if mask is None:
                self.trainable.append(var)
                continue
            mask = np.broadcast_to(np.asarray(mask, var.dtype), var.shape)
            if not mask.any():
                continue  # fully frozen: no gradient at all
            self.trainable.append(var)
            if not mask.all():
                self._partial.append((var, mask))
        self._variables = None

    @property
    def key(self):
        """What the compiled step depends on (same key: the step can be reused)."""
        return tuple(v.path for v in self.trainable), tuple(v.path for v, _ in self._partial)

    @property
    def masked(self) -> list:
        """``(variable, mask variable)`` pairs of the partially frozen variables."""
        if self._variables is None:
            self._variables = [(v, tf.Variable(m, trainable=False, name="mask")) for v, m in self._partial]
        return self._variables

    def update_masks(self, other: "Selection") -> None:
        for (_, mine), (_, theirs) in zip(self.masked, other._partial):
            mine.assign(theirs)
