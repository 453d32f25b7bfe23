"""The run folder: what a run writes, the lock that keeps other runs out, and the safe
replacement of an earlier run by ``--force``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from keras_edge import hookimpl, io
from keras_edge.checkpoint import list_checkpoints, load_checkpoint
from keras_edge.errors import KerasEdgeError
from keras_edge.lock import RunLock, holder
from keras_edge.recipe import to_toml

MARKER = ".keras-edge-run"


class RunFolder:
    """The run folder's own files (``recipe.toml``, ``status.json``, the marker and the
    lock); the built-in plugins write the rest (checkpoints, metrics, model, summary, plots).

    Opening a folder checks ``--out`` and takes its lock. With ``force``, an earlier run is
    moved aside and deleted only once this run has finished its first epoch (its recipe,
    data and model all worked); if this run fails sooner, the earlier run is put back.
    """

    autouse = True  # registered as plugin "run_folder" for the run it holds

    def __init__(self, path, recipe, resume=False, force=False):
        self.path = Path(path)
        self.recipe = recipe
        self.checkpoints = self.path / "checkpoints"
        self._replaced: tuple[Path, RunLock] | None = None
        if self.path.is_symlink() and (force or resume):
            raise KerasEdgeError(f"--out {self.path} is a symbolic link; give the run folder's real path")
        if self.path.exists() and not self.path.is_dir():
            raise KerasEdgeError(f"--out {self.path} is a file, not a folder; choose another --out")
        existing = self.path.is_dir() and any(self.path.iterdir())
        if resume:
            self._check_resumable()
        elif existing and force:
            self._move_aside()
        elif existing:
            raise KerasEdgeError(_not_empty(self.path))
        self._make()
        self.lock = RunLock(self.path).acquire()
        io.write_text(self.path / MARKER, json.dumps({"format": 1}) + "\n")

    # ------------------------------------------------------------------ opening
    def _check_resumable(self) -> None:
        if not list_checkpoints(self.checkpoints):
            started = (self.path / MARKER).exists()
            raise KerasEdgeError(
                f"no checkpoint in {self.checkpoints} to resume from"
                + ("; the run stopped before its first epoch ended: start it again with --force instead "
                   "of --resume" if started else "; run without --resume"))
        saved = self.path / "recipe.toml"
        if saved.exists() and saved.read_text() != to_toml(self.recipe.to_dict()):
            raise KerasEdgeError(f"the recipe differs from {saved}, which this run was started with; "
                                 f"resume with `keras-edge run {saved} --out {self.path} --resume`")

    def _move_aside(self) -> None:
        """Check that ``--force`` may replace this folder, lock it, and rename it out of the way."""
        where, here = self.path.resolve(), Path.cwd().resolve()
        if where in {Path.home().resolve(), here, *here.parents}:
            raise KerasEdgeError(f"--force will not replace {self.path} (the current folder, one above it, "
                                 "or your home folder); choose a run folder as --out")
        if not (self.path / MARKER).exists():
            raise KerasEdgeError(f"--out {self.path} is not a keras-edge run folder (it has no {MARKER} "
                                 "marker), so --force will not delete it; choose another --out or remove "
                                 "it yourself")
        old_lock = RunLock(self.path).acquire()
        aside = self.path.with_name(f".{self.path.name}.replaced-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            old_lock.release()
            raise KerasEdgeError(f"cannot move the earlier run {self.path} aside: {exc.strerror}") from exc
        self._replaced = (aside, old_lock)

    def _make(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.restore_replaced()
            raise KerasEdgeError(f"cannot create the run folder {self.path}: {exc.strerror}; "
                                 "choose another --out") from exc

    # ------------------------------------------------------------------ replacement
    def drop_replaced(self) -> None:
        """This run has proved itself: delete the run it replaces."""
        if self._replaced is not None:
            aside, old_lock = self._replaced
            io.remove(aside)
            old_lock.release()
            self._replaced = None

    def restore_replaced(self) -> bool:
        """This run failed before its first epoch ended: put the earlier run back (True if one was)."""
        if self._replaced is None:
            return False
        aside, old_lock = self._replaced
        io.remove(self.path)
        os.replace(aside, self.path)
        old_lock.release()
        self._replaced = None
        return True

    def close(self) -> None:
        self.lock.release()

    # ------------------------------------------------------------------ files
    def start(self) -> None:
        io.write_text(self.path / "recipe.toml", to_toml(self.recipe.to_dict()))
        self.set_status("running")

    def set_status(self, status: str, reason: str | None = None) -> None:
        record = {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid()}
        if reason:
            record["reason"] = reason
        io.write_text(self.path / "status.json", json.dumps(record, indent=2) + "\n")

    def resume_state(self) -> dict:
        return load_checkpoint(list_checkpoints(self.checkpoints)[-1])

    @hookimpl(trylast=True)
    def on_checkpoint(self):
        """The first epoch is done: the run this one replaces can go."""
        self.drop_replaced()


def read_status(path) -> dict:
    """``status.json`` of a run folder; a run recorded as running whose lock no process
    holds is reported as ``dead`` (killed without a chance to say so)."""
    path = Path(path)
    try:
        record = json.loads((path / "status.json").read_text())
    except FileNotFoundError:
        raise KerasEdgeError(f"{path} has no status.json; is it a keras-edge run folder?") from None
    except (ValueError, OSError) as exc:
        raise KerasEdgeError(f"cannot read {path / 'status.json'}: {exc}") from None
    if record.get("status") == "running":
        pid = holder(path)
        if pid is None:
            record.update(status="dead", reason="the process stopped without recording why (killed?); "
                          f"continue with `keras-edge run {path / 'recipe.toml'} --out {path} --resume`")
        else:
            record["pid"] = pid
    return record


def _not_empty(path: Path) -> str:
    if not (path / MARKER).exists():
        return (f"--out {path} is not empty and is not a keras-edge run folder; choose another --out")
    has_checkpoint = bool(list_checkpoints(path / "checkpoints"))
    way = "pass --resume to continue it, " if has_checkpoint else ""
    return f"run folder {path} is not empty; {way}pass --force to replace it, or choose another --out"
