"""Built-in plugin ``tensorboard``: every numeric log entry as a scalar in ``RUN/tensorboard/``."""

from __future__ import annotations

from pathlib import Path

from keras_edge import hookimpl


class TensorBoard:
    """One scalar per log entry and epoch, at the run's global step."""

    autouse = True

    def __init__(self):
        self._writer = None

    @hookimpl(trylast=True)
    def on_epoch_end(self, ctx, logs):
        if ctx.run_dir is None:
            return
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(Path(ctx.run_dir) / "tensorboard"))
        with self._writer.as_default():
            for key, value in logs.items():
                if isinstance(value, (int, float)):
                    tf.summary.scalar(key, value, step=ctx.global_step)
        self._writer.flush()
