"""Images in class sub-folders: ``ROOT/train/<class>/*.png`` and, optionally, ``ROOT/test/<class>/*``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_edge.data.arrays import Arrays, split_validation
from keras_edge.errors import DataError

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def load_folder(root: str, config) -> Arrays:
    """Read every image, resized to ``image_size`` (default 32) with ``channels`` (default 3)."""
    import tensorflow as tf

    root = Path(root)
    size = config.image_size or 32
    channels = config.channels or 3
    if not (root / "train").is_dir():
        raise DataError(f"image folder {root} has no train/ sub-folder; lay it out as "
                        "ROOT/train/<class>/*.png and ROOT/test/<class>/*.png")
    class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())

    def read(split):
        images, labels = [], []
        for label, name in enumerate(class_names):
            for path in sorted((root / split / name).glob("*")):
                if path.suffix.lower() in SUFFIXES:
                    try:
                        image = tf.io.decode_image(tf.io.read_file(str(path)), channels=channels,
                                                   expand_animations=False)
                    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as exc:
                        raise DataError(f"cannot read the image {path} ({exc.message.splitlines()[0]}); "
                                        "replace or remove it") from None
                    images.append(tf.image.resize(image, (size, size)).numpy())
                    labels.append(label)
        if not images:
            raise DataError(f"no images found under {root / split}; expected {root / split}/<class>/*.png")
        return np.clip(np.stack(images), 0, 255).astype(np.uint8), np.array(labels)

    x_train, y_train = read("train")
    if (root / "test").is_dir():
        x_test, y_test = read("test")
    else:  # no test split given: hold out a fifth of the training images
        x_train, y_train, x_test, y_test = split_validation(x_train, y_train, 0.2, seed=1234)
    return Arrays(x_train, y_train, x_test, y_test, class_names)
