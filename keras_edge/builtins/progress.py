"""Built-in plugin ``progress``: a progress bar per epoch and one summary line after it."""

from __future__ import annotations

import sys
import time

import keras

from keras_edge import hookimpl


class Progress:
    """Keras' progress bar (refreshed at most twice a second), then ``stage S epoch E/N: ...``."""

    autouse = True
    REFRESH_S = 0.5

    def __init__(self):
        self._bar, self._sums, self._count, self._last = None, {}, 0, 0.0

    @hookimpl
    def on_epoch_start(self, ctx):
        self._bar = keras.utils.Progbar(ctx.steps_per_epoch, verbose=1 if sys.stdout.isatty() else 2,
                                        stateful_metrics=["loss", "accuracy"], unit_name="step")
        self._sums, self._count, self._last = {}, 0, 0.0

    @hookimpl
    def on_step_end(self, ctx, metrics):
        for key, value in metrics.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1
        now = time.perf_counter()
        if now - self._last > self.REFRESH_S or self._count == ctx.steps_per_epoch:
            self._last = now
            self._bar.update(self._count, [(k, float(v) / self._count) for k, v in self._sums.items()])

    @hookimpl(trylast=True)
    def on_epoch_end(self, ctx, logs):
        shown = ", ".join(f"{k}={v:.4f}" for k, v in logs.items() if k in ("loss", "accuracy", "val_accuracy"))
        print(f"stage {ctx.stage.name} epoch {ctx.epoch + 1}/{ctx.epochs}: {shown}", flush=True)
