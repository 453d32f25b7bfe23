"""Datasets by name, deterministic splits, and their ``tf.data`` pipelines."""

from __future__ import annotations

import numpy as np

from keras_edge.data.arrays import Arrays, keep_classes, split_validation
from keras_edge.data.digits import load_digits
from keras_edge.data.fashion_mnist import load_fashion_mnist
from keras_edge.data.folder import load_folder
from keras_edge.data.synthetic import load_synthetic
from keras_edge.data.tfds import load_tfds
from keras_edge.errors import DataError, RecipeError

BUILTIN_DATASETS = {
    "fashion_mnist": load_fashion_mnist,
    "digits": load_digits,
    "synthetic": load_synthetic,
}

__all__ = ["Arrays", "Data", "BUILTIN_DATASETS", "check_arrays", "load_data", "to_float"]


class Data:
    """Train/validation/test splits of one dataset and the pipelines that feed them.

    Images are uint8 NHWC arrays (``to_float`` converts them as the pipelines do);
    pipelines yield ``{"image": float32 in [0, 1],
    "label": int32}`` batches; training batches add ``"seed"``, an int64 ``[2]`` seed for
    stateless random ops (augmentation that a resumed run repeats exactly).
    """

    def __init__(self, arrays: Arrays, config):
        x, y = _limit(arrays.x_train, arrays.y_train, config.limit, config.seed)
        x_test, y_test = _limit(arrays.x_test, arrays.y_test, config.test_limit, config.seed)
        x, x_test = (_reshape(a, config.image_size, config.channels) for a in (x, x_test))
        self.x_train, self.y_train, self.x_val, self.y_val = split_validation(
            x, y, config.validation_fraction, config.seed)
        if config.validation_fraction > 0 and not len(self.x_val):
            raise DataError(f"data.validation_fraction = {config.validation_fraction} of {len(x)} training "
                            "examples leaves no validation example; raise it or use more data")
        self.x_test, self.y_test = x_test, y_test
        self.class_names = list(arrays.class_names)
        self.num_classes = len(self.class_names)
        self.input_shape = tuple(self.x_train.shape[1:])
        self.config = config

    def steps_per_epoch(self, batch_size: int) -> int:
        return len(self.x_train) // batch_size

    def train_dataset(self, batch_size: int, seed: int, epoch: int = 0, augment=None,
                      replicas: int = 1, pipeline: int = 0, pipelines: int = 1):
        """Shuffled full batches; their order and seeds depend only on ``(seed, epoch)``.

        With ``replicas`` > 1 each global batch is cut into per-replica parts, and
        input ``pipeline`` (one per worker) yields the parts of its local replicas in
        order, so every replica sees its share of the same global batch.
        """
        import tensorflow as tf

        if len(self.x_train) < batch_size:
            raise DataError(f"the training split has {len(self.x_train)} examples, fewer than one "
                            f"batch of {batch_size}; lower data.batch_size")
        if batch_size % replicas:
            raise DataError(f"data.batch_size = {batch_size} cannot be split over {replicas} replicas; "
                            f"use a multiple of {replicas}")
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(self.x_train))
        n = len(order) // batch_size * batch_size
        parts = order[:n].reshape(-1, replicas, batch_size // replicas)
        seeds = rng.integers(0, 2**62, (*parts.shape[:2], 2))
        mine = slice(pipeline * replicas // pipelines, (pipeline + 1) * replicas // pipelines)
        parts, seeds = parts[:, mine].reshape(-1, batch_size // replicas), seeds[:, mine].reshape(-1, 2)
        images, labels = tf.constant(self.x_train), tf.constant(self.y_train)
        ds = tf.data.Dataset.from_tensor_slices((parts, seeds))
        ds = ds.map(lambda idx, s: {**_to_batch(tf.gather(images, idx), tf.gather(labels, idx)), "seed": s},
                    num_parallel_calls=tf.data.AUTOTUNE)
        if augment is not None:
            ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def eval_dataset(self, split: str, batch_size: int):
        """Batches of the ``"val"``, ``"test"`` or ``"train"`` split, in order."""
        import tensorflow as tf

        x, y = self.split(split)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
        return ds.map(_to_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def split(self, name: str):
        """The ``(images, labels)`` arrays of a split."""
        return {"train": (self.x_train, self.y_train), "val": (self.x_val, self.y_val),
                "test": (self.x_test, self.y_test)}[name]


def check_arrays(arrays: Arrays, name: str) -> None:
    """Refuse data that would crash or mislead later: counts that differ, labels outside
    the class list, fewer than two classes."""
    classes = len(arrays.class_names)
    for split, x, y in (("train", arrays.x_train, arrays.y_train), ("test", arrays.x_test, arrays.y_test)):
        if len(x) != len(y):
            raise DataError(f"dataset {name!r}: the {split} split has {len(x)} images but {len(y)} labels; "
                            "its files do not belong together (truncated or mixed up?)")
        if len(y) and (y.min() < 0 or y.max() >= classes):
            raise DataError(f"dataset {name!r}: {split} labels span {y.min()}..{y.max()} but there are "
                            f"{classes} classes; labels must be 0..{classes - 1}")
    if len(np.unique(arrays.y_train)) < 2:
        raise DataError(f"dataset {name!r}: the training split holds fewer than 2 classes; "
                        "a classifier cannot learn from it")


def to_float(images):
    """uint8 images (NumPy or TensorFlow) as float32 in [0, 1]: what models are trained on."""
    if isinstance(images, np.ndarray):
        return images.astype(np.float32) / 255.0
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 255.0


def _to_batch(images, labels):
    import tensorflow as tf

    return {"image": to_float(images), "label": tf.cast(labels, tf.int32)}


def _limit(x, y, limit, seed):
    if not limit or limit >= len(x):
        return x, y
    keep = np.sort(np.random.default_rng([seed, 7]).permutation(len(x))[:limit])
    return x[keep], y[keep]


def _reshape(images, size, channels):
    if size and images.shape[1:3] != (size, size):
        import tensorflow as tf

        images = np.clip(np.round(tf.image.resize(images, (size, size)).numpy()), 0, 255).astype(np.uint8)
    if channels and images.shape[-1] != channels:
        if images.shape[-1] == 1 and channels == 3:
            images = np.repeat(images, 3, axis=-1)
        elif images.shape[-1] == 3 and channels == 1:
            weights = np.array([0.299, 0.587, 0.114])
            images = np.round(images @ weights)[..., None].astype(np.uint8)
        else:
            raise RecipeError(f"data.channels: cannot convert {images.shape[-1]} channels to {channels}; use 1 or 3")
    return images


def load_data(config, registry=None) -> Data:
    """Load the dataset a recipe's ``[data]`` section names and split it.

    ``registry`` maps names to loaders (built-ins plus plugin datasets);
    ``tfds:<name>`` and ``folder:<path>`` are always understood.
    """
    registry = BUILTIN_DATASETS if registry is None else registry
    name = config.name
    if name.startswith("tfds:"):
        arrays = load_tfds(name[5:], config)
    elif name.startswith("folder:"):
        arrays = load_folder(name[7:], config)
    elif name in registry:
        arrays = registry[name](config)
    else:
        raise RecipeError(f"data.name: unknown dataset {name!r}; choose one of {sorted(registry)}, "
                          "'tfds:<name>' or 'folder:<path>'")
    check_arrays(arrays, name)
    if config.classes:
        bad = [c for c in config.classes if not 0 <= c < len(arrays.class_names)]
        if bad:
            raise RecipeError(f"data.classes: {bad} out of range for {name} "
                              f"({len(arrays.class_names)} classes); use 0..{len(arrays.class_names) - 1}")
        arrays = keep_classes(arrays, list(config.classes))
    return Data(arrays, config)
