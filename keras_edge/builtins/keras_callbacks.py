"""Built-in plugin ``keras_callbacks``: Keras callbacks you already have, run inside the loop.

Named in a recipe (Keras' own callbacks, by class name and keyword arguments)::

    [[plugins.keras_callbacks.callbacks]]
    name = "ReduceLROnPlateau"
    monitor = "val_loss"
    factor = 0.5
    patience = 1

or passed from Python: ``run_recipe(recipe, out, callbacks=[MyCallback()])``. Keras'
methods are called where the loop's hooks fire: ``on_train_begin`` (``on_run_start``),
``on_epoch_begin`` / ``on_epoch_end`` with the epoch's logs (``on_epoch_start`` /
``on_epoch_end``), ``on_train_batch_end`` with the step's metrics (``on_step_end``, only
for callbacks that define it: it waits for every step), ``on_train_end``
(``on_run_end``). ``self.model`` is the model being trained, with ``model.optimizer``
the loop's optimizer; ``model.stop_training = True`` ends the stage. Epochs are counted
within each stage, as ``ctx.epoch``.
"""

from __future__ import annotations

import dataclasses

import keras

from keras_edge import hookimpl
from keras_edge.errors import RecipeError


class _ModelView:
    """What a callback sees as ``self.model``: the trained model, the loop's optimizer,
    and a ``stop_training`` flag the loop reads after each epoch."""

    def __init__(self, ctx):
        object.__setattr__(self, "_ctx", ctx)
        object.__setattr__(self, "stop_training", False)

    @property
    def optimizer(self):
        return self._ctx.optimizer

    def __getattr__(self, name):
        return getattr(self._ctx.model, name)

    def __setattr__(self, name, value):
        if name == "stop_training":
            object.__setattr__(self, name, value)
        else:
            setattr(self._ctx.model, name, value)


class KerasCallbacks:
    """Runs ``keras.callbacks.Callback`` objects at the matching points of the loop."""

    autouse = True

    @dataclasses.dataclass(frozen=True)
    class Options:
        callbacks: tuple[dict, ...] = ()
        """Keras callbacks to run: tables of ``name`` (a class of ``keras.callbacks``) and its keyword arguments."""

        def __post_init__(self):
            for table in self.callbacks:
                name = table.get("name")
                cls = getattr(keras.callbacks, str(name), None)
                if not (isinstance(cls, type) and issubclass(cls, keras.callbacks.Callback)):
                    raise RecipeError(f"plugins.keras_callbacks.callbacks: {name!r} is not a class of "
                                      "keras.callbacks; pass your own callbacks from Python instead")

    def __init__(self):
        self.python_callbacks: list = []
        self._callbacks: list = []
        self._view = None

    @hookimpl
    def on_run_start(self, ctx, options):
        built = []
        for table in options.callbacks:
            kwargs = {k: v for k, v in table.items() if k != "name"}
            try:
                built.append(getattr(keras.callbacks, table["name"])(**kwargs))
            except (TypeError, ValueError) as exc:
                raise RecipeError(f"plugins.keras_callbacks.callbacks: {table['name']}: {exc}") from None
        self._callbacks = built + list(self.python_callbacks)
        self._view = _ModelView(ctx)
        for callback in self._callbacks:
            callback.set_model(self._view)
            callback.set_params({"epochs": ctx.epochs, "steps": ctx.steps_per_epoch, "verbose": 0})
            callback.on_train_begin()

    @hookimpl
    def on_epoch_start(self, ctx):
        for callback in self._callbacks:
            callback.on_epoch_begin(ctx.epoch)

    @hookimpl
    def on_step_end(self, ctx, metrics):
        batch_end = [c for c in self._callbacks
                     if type(c).on_train_batch_end is not keras.callbacks.Callback.on_train_batch_end]
        if batch_end:
            logs = {k: float(v) for k, v in metrics.items()}
            for callback in batch_end:
                callback.on_train_batch_end(ctx.step - ctx.epoch * ctx.steps_per_epoch - 1, logs)

    @hookimpl
    def on_epoch_end(self, ctx, logs):
        for callback in self._callbacks:
            callback.on_epoch_end(ctx.epoch, logs)
        if self._view is not None and self._view.stop_training:
            self._view.stop_training = False
            ctx.stop_stage = True

    @hookimpl
    def on_run_end(self, summary):
        for callback in self._callbacks:
            callback.on_train_end(dict(summary))
