"""The hook contract between the training loop and plugins.

Every hook is called with keyword arguments; an implementation may accept only the
arguments it needs, so new arguments never break existing plugins. ``ctx`` is the
``keras_edge.context.RunContext`` of the run; ``options`` is the implementing
plugin's own validated ``Options`` instance for the current stage (``None`` for a
plugin without options). Hooks run between compiled steps,
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

    Called once per run, for every installed plugin (active or not). Return
    ``{name: builder}`` where ``builder(input_shape, num_classes, width,
    **model_options)`` returns a Keras model (``width`` is ``model.width``, the
    options are the recipe's ``[model.options]`` table). Results are merged; a name
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
def on_run_start(ctx, options) -> None:
    """Fires once per process before training, after the first stage's model and data are built
    (a resumed run fires it at the stage it resumes)."""


@hookspec
def on_stage_start(ctx, options) -> None:
    """Fires at the start of each stage (``ctx.stage``), after its data is loaded and the
    model is adapted to it (a new classifier when the number of classes changes)."""


@hookspec
def on_epoch_start(ctx, options) -> None:
    """Fires before each epoch (``ctx.epoch``), before ``select_trainable``."""


@hookspec
def on_epoch_end(ctx, logs: dict, options) -> None:
    """Fires after each epoch's validation. ``logs`` maps ``loss``, ``accuracy``,
    ``val_loss``, ``val_accuracy`` (absent when ``data.validation_fraction = 0``),
    ``learning_rate``, ``epoch_time_s`` and each loss term to floats; implementations
    may add entries (they go to ``metrics.csv`` and TensorBoard). Set
    ``ctx.stop_stage = True`` to end the stage after this epoch."""


@hookspec
def on_step_end(ctx, metrics: dict, options) -> None:
    """Fires after every optimizer step, outside the compiled step. ``metrics`` maps
    ``loss``, ``accuracy`` and each loss term to this step's scalar tensors (reading one
    with ``float()`` waits for the step to finish). Costs a Python call per step, so
    the loop calls it only when an active plugin implements it."""


@hookspec
def on_checkpoint(ctx, state: dict, options) -> None:
    """Fires after each epoch, after ``on_grow``, with ``state``: the loop's resumable
    state (``stage_index``, ``epoch``, ``global_step``, ``history``, ``stage_results``,
    ``train_macs``, ``elapsed_s``) and every plugin's ``state_dict`` under ``plugins``.
    The built-in ``checkpoints`` plugin writes it with ``ctx.model`` and
    ``ctx.optimizer``; the state is only gathered when an active plugin implements this."""


@hookspec
def on_stage_end(ctx, logs: dict, options) -> None:
    """Fires after the last epoch of a stage and its test evaluation; ``logs`` holds
    ``test_loss``, ``test_accuracy`` and ``time_s``, and entries added go to
    ``summary.json`` under ``stages.<name>``."""


@hookspec
def on_run_end(ctx, summary: dict, options) -> None:
    """Fires once after training; implementations may add entries to ``summary``
    (written to ``summary.json``)."""


# ---------------------------------------------------------------- method hooks


@hookspec(firstresult=True)
def on_grow(ctx, model, options) -> Any:
    """Replace the model between epochs.

    Fires after ``on_epoch_end`` of every epoch. Return a new Keras model (weights
    already carried over) to continue with it, or ``None`` to keep ``model``. The loop
    rebuilds the optimizer for the new variables and retraces the step; under a
    multi-replica strategy it copies the model onto the replicas (build it as usual,
    outside the strategy's scope). The first non-``None`` result wins.
    """


@hookspec
def select_trainable(ctx, model, options) -> dict[str, Any] | None:
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
def sample_subnets(ctx, options) -> list | None:
    """Choose the (sub)networks trained on the next batch.

    Fires before every optimizer step. Return a list of
    ``keras_edge.context.SubnetSample(config, grad_scale, ce_weight, distill_weight)``:
    each is trained on the batch through ``model(x, training=True, subnet=config)``
    (``config=None``: the plain model) with the loss ``ce_weight * CE`` plus the
    ``loss_terms`` (the built-in ``inplace_distillation`` adds ``distill_weight *
    KL(first || subnet)``, ``first`` being the first sample's detached softmax), and
    the gradients ``sum(grad_scale * grad(loss))`` make one
    optimizer step. Configs must keep one shape, so the step is traced once per list
    length; a model may define ``subnet_macs(config)`` so training MACs are counted
    per subnet. ``None`` trains the full model alone. The first non-``None`` result
    wins.
    """


@hookspec(firstresult=True)
def configure_optimizer(ctx, model, optimizer, options) -> Any:
    """Replace the optimizer the loop built from ``[train]``.

    Fires whenever the loop builds an optimizer: at the start of every stage and
    after ``on_grow`` replaced the model (so a replacement survives stage changes and
    growth). Return a ``keras.optimizers.Optimizer`` for ``model``'s variables (for
    example one whose ``update_step`` scales the learning rate per layer) or ``None``
    to keep ``optimizer``. The loop builds it, carries the step count over and
    checkpoints its variables. The first non-``None`` result wins.
    """


@hookspec(firstresult=True)
def evaluation_weights(ctx, model, options) -> Any:
    """Weights to evaluate and ship instead of the training weights (EMA, SWA).

    Fires before each validation and test evaluation and before ``on_run_end``
    (whose ``summary`` plugin writes ``model.keras``). Return a list shaped like
    ``model.get_weights()``; the loop loads it for the evaluation (or the end of the
    run) and puts the training weights back afterwards, so training and checkpoints
    go on with the training weights (keep your averaged weights in ``state_dict``
    to resume them). ``None`` evaluates the training weights. The first non-``None``
    result wins.
    """


@hookspec
def augment_batch(ctx, batch: dict, options) -> dict | None:
    """Transform a training batch inside the ``tf.data`` pipeline (traced, not eager).

    ``batch`` holds ``"image"`` (float32, NHWC, in [0, 1]), ``"label"`` (int32) and
    ``"seed"`` (int64 ``[2]``, fixed by ``train.seed`` and the epoch): draw random
    numbers with ``tf.random.stateless_*`` from it so a resumed run repeats them. Add
    ``"target"`` (float32 ``[B, classes]`` probabilities, e.g. MixUp's mixed labels or
    a teacher's predictions) and the cross-entropy is taken against it instead of the
    one-hot ``"label"`` (which accuracy still uses).
    Return a new dict (for example with ``"image"`` replaced, or extra augmented
    ``"views"``: a list of tensors shaped like ``"image"``, which ``tf.data`` hands on
    stacked as ``[V, B, H, W, C]`` and the loop runs through the model together with
    the clean images, taking cross-entropy on the clean ones) or ``None`` to leave it.
    Implementations are chained in registration order: each receives the previous
    one's output. Use TensorFlow ops only.
    """


@hookspec
def loss_terms(ctx, batch: dict, outputs: dict, model, subnet, options) -> dict | None:
    """Add terms to the loss inside the compiled train step (traced, not eager).

    Traced for the step's first sample and once for all later ones (on one replica they
    run as one ``tf.while_loop``; with several, once per sample). ``outputs`` holds
    ``"logits"`` of the clean images, when the batch has ``"views"``, ``"view_logits"``
    (a list), and for every sample after the step's first, ``"first_logits"`` (the first
    sample's logits, a constant there: each sample's gradients come from its own tape);
    ``subnet`` is the ``SubnetSample`` of this step, its fields being the step's
    tensors (so it is current at every step, not the one of the first trace). Return
    ``{name: scalar tensor}``; all terms of all plugins are added to the loss of that
    subnet and each term of the first sample is logged as a metric.
    """


@hookspec
def evaluate_extra(ctx, model, flags: dict, options) -> dict | None:
    """Add sections to ``keras-edge evaluate``.

    Called on every installed plugin, active or not. ``flags`` holds the evaluate
    command's boolean options (for example ``{"corruptions": True, "subnets":
    False}``). Return ``{section: result}`` to merge into ``evaluation.json``, or
    ``None``.
    """


# ---------------------------------------------------------------- resume


@hookspec
def state_dict(ctx, options) -> dict | None:
    """Return this plugin's state, saved with every checkpoint: dicts, lists, numbers,
    strings and NumPy arrays (arrays go to the checkpoint's ``plugins.npz``); anything
    else stops the run with an error naming the plugin. Called per plugin, active or
    not; the result is stored under the plugin's name."""


@hookspec
def load_state_dict(ctx, state: dict, options) -> None:
    """Restore what ``state_dict`` returned, when a run resumes from a checkpoint.
    Called after ``on_run_start`` and ``on_stage_start`` of the resumed stage, so the
    saved state replaces what those set up."""
