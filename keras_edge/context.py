"""What hooks receive: the run context and the per-step subnet sample."""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from keras_edge.errors import PluginError


@dataclasses.dataclass
class SubnetSample:
    """One (sub)network to train on the current batch.

    ``config`` is passed to the model as ``model(x, training=True, subnet=config)``
    (``None`` means the full model and a plain call). The loss of this subnet is
    ``ce_weight * cross_entropy + distill_weight * KL(teacher || subnet)``, where the
    teacher is the first sample's detached soft prediction; its gradient is multiplied
    by ``grad_scale`` before all samples' gradients are summed into one optimizer step.
    """

    config: Any = None
    grad_scale: float = 1.0
    ce_weight: float = 1.0
    distill_weight: float = 0.0


@dataclasses.dataclass
class RunContext:
    """The state of a run that hooks may read (and plugins may keep notes in ``scratch``).

    Fields are added over time; an implementation should only read what it needs.
    """

    recipe: Any
    """The validated ``keras_edge.recipe.Recipe``."""
    run_dir: Any = None
    """``pathlib.Path`` of the run folder (``None`` in library use without a folder)."""
    model: Any = None
    """The Keras model being trained (replaced when ``on_grow`` returns a new one)."""
    optimizer: Any = None
    data: Any = None
    """The ``keras_edge.data.Data`` of the current stage (train/val/test splits, spec)."""
    stage: Any = None
    """The current ``keras_edge.recipe.Stage``."""
    stage_index: int = 0
    epoch: int = 0
    """Epoch within the stage, counted from 0."""
    step: int = 0
    """Optimizer step within the stage, counted from 0."""
    global_step: int = 0
    steps_per_epoch: int = 0
    options: dict = dataclasses.field(default_factory=dict)
    """Plugin name -> its validated ``Options`` instance (a hook gets its own as ``options``)."""
    history: list = dataclasses.field(default_factory=list)
    """One row per finished epoch (``stage``, ``epoch`` counted from 1, and the epoch's logs),
    as in ``metrics.csv``; restored on resume."""
    stop_stage: bool = False
    """Set it in ``on_epoch_end`` to end the stage after this epoch (early stopping does)."""
    scratch: dict = dataclasses.field(default_factory=dict)
    """Free space for plugins to share state within a run."""

    @property
    def epochs(self) -> int:
        """Number of epochs of the current stage."""
        return self.stage.epochs if self.stage is not None else 0


def step_inputs(samples) -> tuple:
    """The train step's ``configs`` tuple and ``[k, 3]`` weights tensor for these samples."""
    configs = tuple(None if s.config is None else tf.convert_to_tensor(s.config) for s in samples)
    weights = tf.constant([[s.grad_scale, s.ce_weight, s.distill_weight] for s in samples], tf.float32)
    return configs, weights


def checked_samples(plugin: str, samples) -> list:
    """What ``sample_subnets`` returned, if it is a non-empty list of ``SubnetSample``."""
    if not isinstance(samples, (list, tuple)) or not samples or not all(isinstance(s, SubnetSample) for s in samples):
        raise PluginError(plugin, "sample_subnets", "return a non-empty list of SubnetSample or None")
    return list(samples)
