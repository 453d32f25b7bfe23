"""Synthetic, learnable image data for tests: each class is a noisy fixed pattern."""

from __future__ import annotations

import numpy as np

from keras_edge.data.arrays import Arrays


def load_synthetic(config) -> Arrays:
    """``synthetic_examples`` training and a quarter as many test images of ``synthetic_shape``."""
    rng = np.random.default_rng(config.seed)
    shape = tuple(config.synthetic_shape)
    k = config.synthetic_classes
    prototypes = rng.uniform(0, 255, (k, *shape))

    def draw(n):
        labels = rng.integers(0, k, n)
        noise = rng.normal(0, 40, (n, *shape))
        return np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8), labels

    x_train, y_train = draw(config.synthetic_examples)
    x_test, y_test = draw(max(k, config.synthetic_examples // 4))
    return Arrays(x_train, y_train, x_test, y_test, [f"class{i}" for i in range(k)])
