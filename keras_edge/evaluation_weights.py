"""Evaluate (and ship) the weights a plugin offers through ``evaluation_weights``, e.g. an
EMA of the training weights, and put the training weights back afterwards."""

from __future__ import annotations

import contextlib

from keras_edge.dispatch import checked
from keras_edge.errors import PluginError


@contextlib.contextmanager
def evaluation_weights(hooks, ctx):
    """Within: ``ctx.model`` holds the weights of ``evaluation_weights`` (if a plugin gives some)."""
    found = hooks.first("evaluation_weights", ctx=ctx, model=ctx.model)
    if found is None:
        yield
        return
    plugin, weights = found
    model, training = ctx.model, ctx.model.get_weights()
    checked(plugin, "evaluation_weights", weights, (list, tuple), "return a list shaped like model.get_weights()")
    try:
        model.set_weights(weights)
    except ValueError as exc:
        raise PluginError(plugin, "evaluation_weights", f"{exc}; return a list shaped like "
                          "model.get_weights()") from None
    try:
        yield
    finally:
        model.set_weights(training)
