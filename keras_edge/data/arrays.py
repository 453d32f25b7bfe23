"""Datasets as in-memory NumPy arrays, and their deterministic splits."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Arrays:
    """A dataset as loaded: uint8 NHWC images and integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list

    def __post_init__(self):
        for name in ("x_train", "x_test"):
            images = getattr(self, name)
            if images.ndim == 3:
                setattr(self, name, images[..., None])
        self.y_train = self.y_train.astype(np.int32).reshape(-1)
        self.y_test = self.y_test.astype(np.int32).reshape(-1)


def keep_classes(arrays: Arrays, classes) -> Arrays:
    """Keep only ``classes`` (in that order) and relabel them 0..k-1."""
    lookup = np.full(max(len(arrays.class_names), max(classes) + 1), -1, np.int32)
    lookup[list(classes)] = np.arange(len(classes))

    def select(x, y):
        keep = np.isin(y, classes)
        return x[keep], lookup[y[keep]]

    x_train, y_train = select(arrays.x_train, arrays.y_train)
    x_test, y_test = select(arrays.x_test, arrays.y_test)
    names = [arrays.class_names[c] for c in classes]
    return Arrays(x_train, y_train, x_test, y_test, names)


def split_validation(x, y, fraction: float, seed: int):
    """Split off a validation set of ``fraction`` of the examples, shuffled by ``seed``."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * fraction))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]
