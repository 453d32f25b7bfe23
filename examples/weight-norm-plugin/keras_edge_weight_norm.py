"""A minimal third-party keras-edge plugin.

Installed, it is active in every run (``autouse``): after each epoch it adds the
L2 norm of the trainable weights to the logs, so ``metrics.csv`` gets a
``weight_norm`` column. Disable it with ``plugins.disable = ["weight_norm"]``.
"""

import math

from keras_edge import hookimpl

autouse = True


@hookimpl
def on_epoch_end(ctx, logs):
    total = sum(float((v.numpy() ** 2).sum()) for v in ctx.model.trainable_variables)
    logs["weight_norm"] = math.sqrt(total)
