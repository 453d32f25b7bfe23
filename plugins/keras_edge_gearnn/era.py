"""The ``era`` plugin: AugMix / Efficient Robust Augmentation views and the JSD loss."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from keras_edge import hookimpl
from keras_edge.errors import RecipeError
from keras_edge_gearnn.augmix import OPS, augment_and_mix
from keras_edge_gearnn.jsd import jensen_shannon


@dataclasses.dataclass(frozen=True)
class Options:
    """Options of ``[plugins.era]``. Defaults are ERA, (W, D, J) = (1, 3, 4)."""

    width: int = 1
    """W: chains mixed per augmented image (AugMix: 3)."""
    depth: int = 3
    """D: operations per chain (the maximum when ``random_depth``)."""
    random_depth: bool = True
    """Draw each chain's depth uniformly in 1..D per sample (AugMix reference default)."""
    views: int = 4
    """J: images in the consistency loss, the clean one included (J - 1 augmented views; AugMix: 3)."""
    severity: int = 3
    """Operation strength, 1..10 (AugMix reference default 3)."""
    alpha: float = 1.0
    """Dirichlet and Beta concentration of the mixing weights."""
    jsd_weight: float = 12.0
    """Weight of the Jensen-Shannon consistency loss (AugMix: 12)."""
    ops: tuple[str, ...] = OPS
    """Operations a chain step picks from; any subset of the default list."""

    def __post_init__(self):
        for key in ("width", "depth", "views"):
            if getattr(self, key) < 1:
                raise RecipeError(f"plugins.era.{key}: must be at least 1, got {getattr(self, key)}; use 1 or more")
        if not 1 <= self.severity <= 10:
            raise RecipeError(f"plugins.era.severity: must be in 1..10, got {self.severity}; use 3 (AugMix default)")
        if self.alpha <= 0:
            raise RecipeError(f"plugins.era.alpha: must be positive, got {self.alpha}; use 1.0")
        if self.jsd_weight < 0:
            raise RecipeError(f"plugins.era.jsd_weight: must be >= 0, got {self.jsd_weight}; use 12.0")
        unknown = sorted(set(self.ops) - set(OPS))
        if unknown or not self.ops:
            raise RecipeError(f"plugins.era.ops: unknown or empty {unknown}; choose from {list(OPS)}")


class RobustAugmentation:
    """Adds J - 1 AugMix views to every batch and their JSD to the loss.

    With ``views = 1`` the clean image is replaced by one AugMix image and no
    consistency loss is added (AugMix without JSD).
    """

    Options = Options

    @hookimpl
    def augment_batch(self, batch, options):
        o = options
        mixed = augment_and_mix(batch["image"], batch["seed"], o.width, o.depth, o.random_depth, o.severity, o.alpha,
                                tuple(o.ops), views=max(o.views - 1, 1))
        if o.views == 1:
            return {**batch, "image": mixed[0]}
        return {**batch, "views": list(batch.get("views", [])) + tf.unstack(mixed)}

    @hookimpl
    def loss_terms(self, outputs, options):
        o = options
        views = list(outputs.get("view_logits", []))
        if o.views == 1 or o.jsd_weight == 0 or len(views) == 0:
            return None
        return {"jsd": o.jsd_weight * jensen_shannon([outputs["logits"], *views])}
