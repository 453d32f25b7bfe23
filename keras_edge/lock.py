"""An exclusive lock on a run folder, held by the process that trains into it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from keras_edge.errors import KerasEdgeError

LOCK_NAME = ".lock"


class RunLock:
    """``flock`` on ``<run folder>/.lock``, which holds the owner's pid.

    The kernel drops the lock when the process dies, so a held lock means a live run.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise KerasEdgeError(f"run folder {self.path.parent} is in use by keras-edge process "
                                 f"{holder(self.path.parent) or '?'}; wait for it to finish, stop it, "
                                 "or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def holder(folder: Path) -> int | None:
    """The pid of the live process holding ``folder``'s lock, or None when no process does."""
    path = Path(folder) / LOCK_NAME
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = path.read_text().strip()
        return int(text) if text.isdigit() else -1
    else:
        return None
    finally:
        os.close(fd)
