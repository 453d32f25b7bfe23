"""The hook contract between the training loop and plugins.

Every hook is called with keyword arguments; an implementation may accept only the
arguments it needs, so new arguments never break existing plugins. ``ctx`` is the
``keras_edge.context.RunContext`` of the run. Hooks run between compiled steps,
except ``augment_batch`` (traced once into the ``tf.data`` pipeline) and
``loss_terms`` (traced once into the compiled train step).

Only the plugins active in the current stage are called: those the stage (or the
recipe's ``plugins.enable``) lists, plus installed plugins marked ``autouse = True``,
minus those in ``plugins.disable``. See ``docs/hooks.md``.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("keras_edge")


# ---------------------------------------------------------------- registration


@hookspec
def register_models() -> dict[str, Any]:
    """Add model builders to the zoo.

    Called once when the plugin manager is built, for every installed plugin (active
    or not). Return ``{name: builder}`` where ``builder(input_shape, num_classes,
    **recipe_model_options)`` returns a Keras model. Results are merged; a name
    defined twice is an error.
    """


@hookspec
def register_datasets() -> dict[str, Any]:
    """Add dataset loaders.

    Called once, for every installed plugin. Return ``{name: loader}`` where
    ``loader(data_config)`` returns a ``keras_edge.data.Arrays``. Results are merged;
    a name defined twice is an error.
    """


@hookspec
def register_commands(cli) -> None:
    """Add click commands to the ``keras-edge`` command group ``cli``.

    Called once at CLI start-up, for every installed plugin.
    """


# ---------------------------------------------------------------- lifecycle


@hookspec
def on_run_start(ctx) -> None:
    """Fires once per process before training, after the first stage's model and data are built
    (a resumed run fires it at the stage it resumes)."""


@hookspec
def on_stage_start(ctx) -> None:
    """Fires at the start of each stage (``ctx.stage``), after its data is loaded."""


@hookspec
def on_epoch_start(ctx) -> None:
    """Fires before each epoch (``ctx.epoch``), before ``select_trainable``."""


@hookspec
def on_epoch_end(ctx, logs: dict) -> None:
    """Fires after each epoch's validation. ``logs`` maps metric names to floats;
    implementations may add entries (they go to ``metrics.csv``)."""


@hookspec
def on_stage_end(ctx, logs: dict) -> None:
    """Fires after the last epoch of a stage; ``logs`` holds the stage's test metrics
    and implementations may add entries (they go to ``summary.json``)."""


@hookspec
def on_run_end(ctx, summary: dict) -> None:
    """Fires once after training; implementations may add entries to ``summary``
    (written to ``summary.json``)."""


# ---------------------------------------------------------------- method hooks


@hookspec(firstresult=True)
def on_grow(ctx, model) -> Any:
    """Replace the model between epochs.

    Fires after ``on_epoch_end`` of every epoch. Return a new Keras model (weights
    already carried over) to continue with it, or ``None`` to keep ``model``. The loop
    rebuilds the optimizer for the new variables and retraces the step; under a
    multi-replica strategy it copies the model onto the replicas (build it as usual,
    outside the strategy's scope). The first non-``None`` result wins.
    """


@hookspec
def select_trainable(ctx, model) -> dict[str, Any] | None:
    """Choose which weights may change during the coming epoch.

    Fires at the start of every epoch, after ``on_epoch_start``. Return
    ``{variable.path: mask}`` for the trainable variables of ``model``; a mask is a
    0/1 NumPy array broadcastable to the variable (shape ``(units,)`` selects output
    neurons along the last axis) or a scalar. Variables not named stay fully
    trainable. Masks from several plugins are combined with AND. A weight whose mask
    is 0 does not move at all that epoch: not through its gradient, momentum or
    weight decay. Return ``None`` to leave every weight trainable.
    """


@hookspec(firstresult=True)
def sample_subnets(ctx) -> list | None:
    """Choose the (sub)networks trained on the next batch.

    Fires before every optimizer step. Return a list of
    ``keras_edge.context.SubnetSample``; the first entry is the teacher for the
    others' distillation. Sample ``config`` values must be tensors or arrays of one
    fixed shape, so the step is traced once per list length. ``None`` trains the full
    model alone. The first non-``None`` result wins.
    """


@hookspec
def augment_batch(ctx, batch: dict) -> dict | None:
    """Transform a training batch inside the ``tf.data`` pipeline (traced, not eager).

    ``batch`` holds ``"image"`` (float32, NHWC, in [0, 1]), ``"label"`` (int32) and
    ``"seed"`` (int64 ``[2]``, fixed by ``train.seed`` and the epoch): draw random
    numbers with ``tf.random.stateless_*`` from it so a resumed run repeats them.
    Return a new dict (for example with ``"image"`` replaced, or extra augmented
    ``"views"``: a list of tensors shaped like ``"image"``, which the loop runs
    through the model together with the clean images, taking cross-entropy on the
    clean ones) or ``None`` to leave it. Implementations are chained: each receives
    the previous one's output. Use TensorFlow ops only.
    """


@hookspec
def loss_terms(ctx, batch: dict, outputs: dict, model, subnet) -> dict | None:
    """Add terms to the loss inside the compiled train step (traced, not eager).

    ``outputs`` holds ``"logits"`` of the clean images and, when the batch has
    ``"views"``, ``"view_logits"`` (a list); ``subnet`` is the current
    ``SubnetSample``. Return ``{name: scalar tensor}``; all terms of all plugins are
    added to the loss of that subnet and each is logged as a metric.
    """


@hookspec
def evaluate_extra(ctx, model, flags: dict) -> dict | None:
    """Add sections to ``keras-edge evaluate``.

    ``flags`` holds the evaluate command's boolean options (for example
    ``{"corruptions": True, "subnets": False}``). Return ``{section: result}`` to
    merge into the evaluation report, or ``None``.
    """


# ---------------------------------------------------------------- resume


@hookspec
def state_dict(ctx) -> dict | None:
    """Return this plugin's state, saved with every checkpoint: dicts, lists, numbers,
    strings and NumPy arrays (arrays go to the checkpoint's ``plugins.npz``). Called
    per plugin, active or not; the result is stored under the plugin's name."""


@hookspec
def load_state_dict(ctx, state: dict) -> None:
    """Restore what ``state_dict`` returned, when a run resumes from a checkpoint.
    Called after ``on_run_start`` and ``on_stage_start`` of the resumed stage, so the
    saved state replaces what those set up."""
