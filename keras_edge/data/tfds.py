"""Any tensorflow-datasets image classification dataset, as ``tfds:<name>``."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

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
    _refuse_foreign_classes(name, data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))
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


def _refuse_foreign_classes(name: str, data_dir: str) -> None:
    """A prepared dataset's ``features.json`` names Python classes that tensorflow-datasets
    imports; refuse any that are not tensorflow-datasets' own, before it can import them."""
    folder = Path(data_dir).expanduser() / name.split(":")[0].split("/")[0]
    for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):  # unreadable: tensorflow-datasets will say so itself
            continue
        for cls in _class_names(content):
            if not cls.startswith("tensorflow_datasets."):
                raise DataError(f"{path} names the Python class {cls!r}, which is not part of "
                                "tensorflow-datasets; keras-edge will not import it (is this folder "
                                "from a trusted source?)")


def _class_names(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pythonClassName" and isinstance(value, str):
                yield value
            else:
                yield from _class_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _class_names(value)


def _as_numpy(examples):
    images, labels = zip(*examples)
    return np.stack(images).astype(np.uint8), np.array(labels)
