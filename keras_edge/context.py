"""What hooks receive: the run context and the per-step subnet sample."""

from __future__ import annotations

import dataclasses
from typing import Any


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
    """Plugin name -> its validated ``Options`` instance."""
    scratch: dict = dataclasses.field(default_factory=dict)
    """Free space for plugins to share state within a run."""

    @property
    def epochs(self) -> int:
        """Number of epochs of the current stage."""
        return self.stage.epochs if self.stage is not None else 0
