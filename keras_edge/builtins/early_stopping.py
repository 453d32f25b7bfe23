"""Built-in plugin ``early_stopping``: end a stage when validation accuracy stops improving."""

from __future__ import annotations

from keras_edge import hookimpl
from keras_edge.errors import KerasEdgeError


class EarlyStopping:
    """Stops a stage after ``train.early_stopping_patience`` epochs without a better
    ``val_accuracy`` (0: never); its counters survive ``--resume``."""

    autouse = True

    def __init__(self):
        self.best, self.waited = -1.0, 0

    @hookimpl
    def on_stage_start(self, ctx):
        self.best, self.waited = -1.0, 0
        if ctx.stage.train.early_stopping_patience and not len(ctx.data.x_val):
            raise KerasEdgeError(f"stage {ctx.stage.name!r}: train.early_stopping_patience needs a validation "
                                 "split; set data.validation_fraction > 0")

    @hookimpl(trylast=True)
    def on_epoch_end(self, ctx, logs):
        patience = ctx.stage.train.early_stopping_patience
        if not patience or "val_accuracy" not in logs:
            return
        if logs["val_accuracy"] > self.best:
            self.best, self.waited = logs["val_accuracy"], 0
            return
        self.waited += 1
        if self.waited >= patience:
            ctx.stop_stage = True
            print(f"stage {ctx.stage.name}: early stop after epoch {ctx.epoch + 1}", flush=True)

    @hookimpl
    def state_dict(self):
        return {"best": self.best, "waited": self.waited}

    @hookimpl
    def load_state_dict(self, state):
        self.best, self.waited = state["best"], state["waited"]
