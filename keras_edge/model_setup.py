"""The model and optimizer of each stage: the model built from the zoo, given a new
classifier when the class count changes, copied onto the replicas after growth; the
optimizer built from ``[train]`` unless a plugin's ``configure_optimizer`` replaces it."""

from __future__ import annotations

import keras

from keras_edge import _compat
from keras_edge.dispatch import checked
from keras_edge.errors import KerasEdgeError, PluginError
from keras_edge.models import BUILTIN_MODELS, build_model
from keras_edge.optim import make_optimizer
from keras_edge.protocols import SynchronizableNorm


def registry(builtin: dict, hooks, hook: str) -> dict:
    """The built-in names plus those every installed plugin registers through ``hook``."""
    merged = dict(builtin)
    for plugin, result in hooks.every(hook):
        checked(plugin, hook, result, dict, "return {name: callable}")
        for name in result:
            if name in merged:
                raise PluginError(plugin, hook, f"name {name!r} is already defined; rename it")
        merged.update(result)
    return merged


def model_for_stage(model, data, ctx, strategy, models=BUILTIN_MODELS):
    """Build the recipe's model, or adapt ``model`` to the stage's data, in ``strategy``'s scope."""
    with strategy.scope():
        model = _adapted(model, data, ctx, models)
    synchronize_batch_norm(model, strategy)
    return model


def _adapted(model, data, ctx, models):
    if model is None:
        keras.utils.set_random_seed(ctx.recipe.train.seed)
        return build_model(ctx.recipe.model, data.input_shape, data.num_classes, models)
    if tuple(model.input_shape[1:]) != tuple(data.input_shape):
        raise KerasEdgeError(
            f"stage {ctx.stage.name!r}: its data has shape {data.input_shape} but the model takes "
            f"{tuple(model.input_shape[1:])}; set data.image_size / data.channels in that stage")
    if model.output_shape[-1] == data.num_classes:
        return model
    # Seeded here: after a cached stage nothing else has seeded this process yet.
    keras.utils.set_random_seed(ctx.stage.train.seed + 1000 * ctx.stage_index)
    return replace_classifier(model, data.num_classes)


def replace_classifier(model, num_classes: int):
    """A copy of functional ``model`` whose last Dense layer has ``num_classes`` units."""
    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense) or not hasattr(model, "inputs"):
        raise KerasEdgeError(f"cannot change {model.name} to {num_classes} classes: its last layer is "
                             f"{type(last).__name__}, not Dense; use a dataset with {model.output_shape[-1]} classes")
    head = keras.layers.Dense(num_classes, name=last.name)
    return keras.Model(model.inputs, head(last.input), name=model.name)


def onto_replicas(model, strategy, distributed: bool):
    """``model`` (built outside the strategy, e.g. by ``on_grow``) copied into the strategy's scope."""
    if distributed:
        with strategy.scope():
            mirrored = keras.models.clone_model(model)
            mirrored.set_weights(model.get_weights())
        model = mirrored
    synchronize_batch_norm(model, strategy)
    return model


def synchronize_batch_norm(model, strategy) -> None:
    """With several replicas, normalisation layers (those with a ``synchronized``
    attribute) use the statistics of the global batch, as on one device."""
    if strategy.num_replicas_in_sync > 1:
        for layer in _compat.all_layers(model):
            if isinstance(layer, SynchronizableNorm):
                layer.synchronized = True


def optimizer_for_stage(hooks, ctx, strategy, iterations: int):
    """The stage's optimizer, built for ``ctx.model`` in the strategy's scope, its step count set."""
    with strategy.scope():
        optimizer = make_optimizer(ctx.stage.train, ctx.steps_per_epoch)
        found = hooks.first("configure_optimizer", ctx=ctx, model=ctx.model, optimizer=optimizer)
        if found is not None:
            optimizer = checked(found[0], "configure_optimizer", found[1], keras.optimizers.Optimizer,
                                "return a keras.optimizers.Optimizer or None")
        optimizer.build(ctx.model.trainable_variables)
    optimizer.iterations.assign(iterations)
    return optimizer
