"""Optimizers and learning-rate schedules from a recipe's ``[train]`` section."""

from __future__ import annotations

import math
import re

import keras


@keras.saving.register_keras_serializable(package="keras_edge")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 over ``warmup_steps``, then constant or cosine decay to ``minimum``."""

    def __init__(self, base, total_steps, warmup_steps=0, kind="constant", minimum=0.0):
        self.base, self.total_steps, self.warmup_steps = float(base), int(total_steps), int(warmup_steps)
        self.kind, self.minimum = kind, float(minimum)

    def __call__(self, step):
        from keras import ops

        step = ops.cast(step, "float32")
        warm = max(self.warmup_steps, 1)
        warmup = self.base * ops.minimum(step / warm, 1.0) if self.warmup_steps else self.base
        if self.kind == "constant":
            return warmup
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        cosine = self.minimum + 0.5 * (self.base - self.minimum) * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self):
        return {"base": self.base, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "kind": self.kind, "minimum": self.minimum}


def make_optimizer(train, steps_per_epoch: int):
    """SGD (with Nesterov momentum) or Adam, with decoupled weight decay (minus ``weight_decay_exclude``) and the schedule."""
    warmup_steps = round(train.warmup_epochs * steps_per_epoch)
    if train.schedule == "constant" and not warmup_steps:
        schedule = train.learning_rate  # a variable, which a callback such as ReduceLROnPlateau may set
    else:
        schedule = WarmupSchedule(train.learning_rate, train.epochs * steps_per_epoch, warmup_steps,
                                  train.schedule, train.min_learning_rate)
    decay = train.weight_decay or None
    if train.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=train.momentum, nesterov=train.nesterov,
                                         weight_decay=decay)
    else:
        optimizer = keras.optimizers.Adam(schedule, weight_decay=decay)
    if decay and train.weight_decay_exclude:
        optimizer.exclude_from_weight_decay(var_names=[re.escape(n) for n in train.weight_decay_exclude])
    return optimizer
