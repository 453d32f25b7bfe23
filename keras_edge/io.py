"""Atomic writes: every artifact goes to a temporary name first and is renamed into place."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from keras_edge.errors import KerasEdgeError


def _fail(path, exc: OSError):
    return KerasEdgeError(f"cannot write {path}: {exc.strerror or exc}; free disk space or choose "
                          "another --out (earlier files and checkpoints are intact)")


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode())


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _fail(path, exc) from exc


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path (file or folder) that is renamed to ``path`` on success."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    remove(tmp)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            old = path.with_name(f".old-{path.name}")
            remove(old)
            os.replace(path, old)
            os.replace(tmp, path)
            remove(old)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        remove(tmp)
        raise _fail(path, exc) from exc
    except BaseException:
        remove(tmp)
        raise


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
