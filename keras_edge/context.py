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
    ``ce_weight * cross_entropy`` plus the plugins' ``loss_terms``, among them the built-in
    ``inplace_distillation``'s ``distill_weight * KL(first || subnet)``, where ``first`` is
    the first sample's detached soft prediction; its gradient is multiplied
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
    ``state_dict`` and ``load_state_dict`` run for every installed plugin, active in the
    stage or not; the classifier is the model's last ``Dense`` layer.
    """

    recipe: Any
    """The validated ``keras_edge.recipe.Recipe`` of the whole run. Always valid."""
    run_dir: Any = None
    """``pathlib.Path`` of the run folder; ``None`` in library use without a folder (built-ins then write nothing)."""
    model: Any = None
    """The Keras model being trained; set from the first stage's start on, replaced when ``on_grow`` returns a
    new one or a stage changes the class count (then holds a new classifier)."""
    optimizer: Any = None
    """The optimizer of the current stage: rebuilt at every stage start and after growth. Valid from
    ``on_stage_start`` on."""
    data: Any = None
    """The ``keras_edge.data.Data`` of the current stage, from ``on_stage_start`` on. Its arrays
    (``x_train``, ``x_val``, ``x_test``) are raw uint8 images: convert them with
    ``keras_edge.data.to_float`` as the pipelines do; ``eval_dataset`` and ``train_dataset`` yield
    float32 batches in [0, 1]."""
    stage: Any = None
    """The current ``keras_edge.recipe.Stage`` (its ``data``, ``train`` and ``options``), from ``on_stage_start`` on."""
    stage_index: int = 0
    """Index of the current stage in ``recipe.stages``, counted from 0."""
    epoch: int = 0
    """Epoch within the stage, counted from 0 (logs, ``metrics.csv`` and the progress line count from 1)."""
    step: int = 0
    """Optimizer steps done in the stage, counted from 0 (``on_step_end`` sees it after the step)."""
    global_step: int = 0
    """Optimizer steps done in the whole run, over all stages."""
    steps_per_epoch: int = 0
    """Full batches per epoch of the current stage (a partial last batch is dropped)."""
    history: list = dataclasses.field(default_factory=list)
    """One row per finished epoch of every stage (``stage``, ``epoch`` counted from 1, and the epoch's logs),
    as in ``metrics.csv``; the current epoch's row is appended after ``on_epoch_end``; restored on resume."""
    stop_stage: bool = False
    """Set it in ``on_epoch_end`` to end the stage after this epoch (early stopping does); reset every epoch."""
    scratch: dict = dataclasses.field(default_factory=dict)
    """Free space for plugins to share state, for the lifetime of the process: it is not checkpointed
    (use ``state_dict`` for what must survive ``--resume``)."""

    @property
    def epochs(self) -> int:
        """Number of epochs of the current stage."""
        return self.stage.epochs if self.stage is not None else 0

    def options_of(self, plugin, name: str):
        """Plugin ``name``'s validated ``Options`` in the current stage (``None`` if it is not installed),
        for a ``plugin`` that declares ``name`` in its ``uses_options``. A hook gets its own plugin's
        options as its ``options`` argument; this is only for another plugin's settings."""
        if name not in getattr(plugin, "uses_options", ()):
            who = getattr(plugin, "name", type(plugin).__name__)
            raise PluginError(who, "options", f"reads [plugins.{name}] without declaring it; add "
                              f"uses_options = ({name!r},) to the plugin class")
        return self.stage.options.get(name) if self.stage is not None else None


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
