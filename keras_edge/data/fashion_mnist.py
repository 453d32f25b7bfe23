"""Fashion-MNIST from the IDX files of Debian's package ``dataset-fashion-mnist``."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from keras_edge.data.arrays import Arrays
from keras_edge.errors import DataError

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a NumPy array; a damaged file is a DataError."""
    fix = "reinstall dataset-fashion-mnist (`apt-get install --reinstall dataset-fashion-mnist`)"
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"cannot read {path} ({exc}); {fix}") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file; {fix}")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != header + int(np.prod(shape)):
        raise DataError(f"{path} holds {len(data) - header} bytes of data where its header announces "
                        f"{shape} ({int(np.prod(shape))}); the file is truncated or damaged: {fix}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(config) -> Arrays:
    """Load the 60k/10k Fashion-MNIST split from ``data_dir`` or the Debian location."""
    folder = Path(config.data_dir or os.environ.get("KERAS_EDGE_FASHION_MNIST", DEFAULT_DIR))

    def part(stem):
        for name in (f"{stem}.gz", stem):
            if (folder / name).exists():
                return read_idx(folder / name)
        raise DataError(
            f"Fashion-MNIST file {stem}(.gz) not found in {folder}; install it with "
            "`apt-get install dataset-fashion-mnist` or set data.data_dir to a folder holding the IDX files"
        )

    return Arrays(part("train-images-idx3-ubyte"), part("train-labels-idx1-ubyte"),
                  part("t10k-images-idx3-ubyte"), part("t10k-labels-idx1-ubyte"), CLASS_NAMES)
