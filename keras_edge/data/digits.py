"""scikit-learn's handwritten digits (8x8, shipped inside the package), upscaled to 28x28."""

from __future__ import annotations

import numpy as np

from keras_edge.data.arrays import Arrays


def load_digits(config) -> Arrays:
    """1797 digits, 16 grey levels, upscaled with bilinear resizing; 20% held out as test."""
    import tensorflow as tf
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = (bunch.images[..., None] / 16.0).astype(np.float32)
    images = tf.image.resize(images, (28, 28), method="bilinear").numpy()
    images = np.clip(np.round(images * 255), 0, 255).astype(np.uint8)
    order = np.random.default_rng(1234).permutation(len(images))
    n_test = len(images) // 5
    test, train = order[:n_test], order[n_test:]
    return Arrays(images[train], bunch.target[train], images[test], bunch.target[test],
                  [str(d) for d in range(10)])
