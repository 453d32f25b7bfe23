"""The active ``augment_batch`` implementations chained into one ``tf.data`` map function."""

from __future__ import annotations

from keras_edge.errors import PluginError


def augment_pipeline(hooks, ctx):
    """``batch -> batch`` through each active implementation in turn, or None when there is none."""
    impls = hooks.impls("augment_batch")
    if not impls:
        return None

    def augment(batch):
        for impl in impls:
            result = hooks.call_impl(impl, {"ctx": ctx, "batch": batch})
            if result is not None:
                if not isinstance(result, dict) or "image" not in result:
                    raise PluginError(impl.plugin_name, "augment_batch",
                                      f"returned {type(result).__name__}; return the batch dict or None")
                batch = result
        return batch

    return augment
