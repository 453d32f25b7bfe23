"""Any tensorflow-datasets image classification dataset, as ``tfds:<name>``."""

from __future__ import annotations

import socket

import numpy as np

from keras_edge.data.arrays import Arrays, split_validation
from keras_edge.errors import DataError

DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def _online(timeout=3.0) -> bool:
    try:
        socket.create_connection(DOWNLOAD_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def load_tfds(name: str, config) -> Arrays:
    """Load ``name`` (train and test splits) from ``data_dir``, downloading it when online.

    Offline and not yet downloaded, this fails at once with the command to run on a
    machine with network (tensorflow-datasets itself would retry for minutes).
    """
    import tensorflow_datasets as tfds

    data_dir = config.data_dir or None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as exc:  # tfds raises DatasetNotFoundError and others for bad names
        raise DataError(f"data.name: unknown tensorflow-datasets name {name!r} ({type(exc).__name__}); "
                        "see `python -c 'import tensorflow_datasets as tfds; print(tfds.list_builders())'`") from exc
    if not builder.is_prepared():
        if not _online():
            raise DataError(
                f"tfds:{name} is not in {builder.data_dir} and the network is unreachable; on a machine "
                f"with network run `python -c \"import tensorflow_datasets as tfds; tfds.load('{name}')\"` "
                "and copy ~/tensorflow_datasets here (or set data.data_dir)"
            )
        builder.download_and_prepare()
    splits = builder.info.splits
    test_split = "test" if "test" in splits else ("validation" if "validation" in splits else None)
    x_train, y_train = _as_numpy(tfds.as_numpy(builder.as_dataset("train", as_supervised=True)))
    if test_split is None:
        x_train, y_train, x_test, y_test = split_validation(x_train, y_train, 0.2, seed=1234)
    else:
        x_test, y_test = _as_numpy(tfds.as_numpy(builder.as_dataset(test_split, as_supervised=True)))
    label = builder.info.features["label"]
    return Arrays(x_train, y_train, x_test, y_test, list(label.names))


def _as_numpy(examples):
    images, labels = zip(*examples)
    return np.stack(images).astype(np.uint8), np.array(labels)
