"""Checks that stop a run before it wastes time or writes a broken checkpoint."""

from __future__ import annotations

import math

from keras_edge.errors import TrainingError

DIVERGED = 100.0
"""An epoch whose mean loss exceeds this many times ln(classes), a uniform guess's loss, has diverged."""


def check_finite(finite, ctx) -> None:
    """Stop at once when a step's loss was NaN or infinite (the last good checkpoint is kept)."""
    if not bool(finite):
        raise TrainingError(
            f"the loss became NaN or infinite in stage {ctx.stage.name!r}, epoch {ctx.epoch + 1}, step "
            f"{ctx.step + 1} (global step {ctx.global_step + 1}); the last good checkpoint is kept; "
            "lower train.learning_rate or check the data")


def check_divergence(loss: float, ctx) -> None:
    """Stop when an epoch's mean loss is far above a uniform guess's: finite, but diverged."""
    classes = ctx.data.num_classes
    if loss > DIVERGED * math.log(classes):
        raise TrainingError(
            f"the training loss diverged in stage {ctx.stage.name!r}, epoch {ctx.epoch + 1} (mean {loss:.3g}, "
            f"over {DIVERGED:g} x ln({classes}), the loss of a uniform guess); the last good checkpoint is "
            "kept; lower train.learning_rate")


class StopRequest:
    """SIGTERM during training: the loop stops at the next step boundary, never inside a
    TensorFlow trace (where an exception can be replaced by TensorFlow's own)."""

    requested = False
    training = False


def request_stop(signum, frame) -> None:
    if not StopRequest.training:
        raise KeyboardInterrupt
    StopRequest.requested = True


def check_stop() -> None:
    if StopRequest.requested:
        StopRequest.requested = False
        raise KeyboardInterrupt
