"""MixUp (Zhang et al., 2018) as a third-party keras-edge plugin.

Each training batch is mixed with a shuffled copy of itself, images and one-hot labels
alike, with a weight drawn from Beta(alpha, alpha): ``augment_batch`` returns the mixed
``image`` and the mixed ``target`` probabilities, and the loop's cross-entropy uses the
``target``. Random draws come from the batch's ``seed``, so a resumed run repeats them.
Enable it in a recipe with ``plugins.enable = ["mixup"]``.
"""

import dataclasses

import tensorflow as tf

from keras_edge import hookimpl


@dataclasses.dataclass(frozen=True)
class Options:
    alpha: float = 0.2
    """Concentration of the Beta(alpha, alpha) mixing weight (MixUp's alpha)."""

    def __post_init__(self):
        if not self.alpha > 0:
            raise ValueError(f"alpha = {self.alpha} must be > 0")


def mix(batch, classes: int, alpha: float):
    """The batch mixed with a shuffled copy of itself; also returns the weight and the permutation."""
    images, seed = batch["image"], batch["seed"]
    a = tf.random.stateless_gamma([], seed=seed, alpha=alpha)
    b = tf.random.stateless_gamma([], seed=seed + 1, alpha=alpha)
    weight = a / (a + b)
    order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(images)[0]), seed=seed + 2)
    onehot = tf.one_hot(batch["label"], classes)
    mixed = {**batch, "image": weight * images + (1.0 - weight) * tf.gather(images, order),
             "target": weight * onehot + (1.0 - weight) * tf.gather(onehot, order)}
    return mixed, weight, order


@hookimpl
def augment_batch(ctx, batch, options):
    return mix(batch, ctx.data.num_classes, options.alpha)[0]
