"""Run a recipe into a run folder: the entry point of ``keras-edge run``."""

from __future__ import annotations

import csv
import io as _stringio
import json
import shutil
import time
from pathlib import Path

from keras_edge import io
from keras_edge.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from keras_edge.errors import KerasEdgeError
from keras_edge.loop import Trainer
from keras_edge.plugins import get_plugin_manager
from keras_edge.recipe import to_toml


class RunFolder:
    """The files of one run: recipe.toml, metrics.csv, checkpoints/, tensorboard/,
    model.keras, summary.json, training_curves.png and status.json."""

    def __init__(self, path, recipe, resume=False, force=False):
        self.path = Path(path)
        self.recipe = recipe
        exists = self.path.exists() and any(self.path.iterdir())
        if exists and not (resume or force):
            raise KerasEdgeError(f"run folder {self.path} is not empty; pass --resume to continue it, "
                                 "--force to overwrite it, or choose another --out")
        if resume:
            saved = self.path / "recipe.toml"
            if saved.exists() and saved.read_text() != to_toml(recipe.to_dict()):
                raise KerasEdgeError(f"the recipe differs from {saved}, which this run was started with; "
                                     f"resume with `keras-edge run {saved} --out {self.path} --resume`")
        elif force and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"
        self._writer = None

    def start(self) -> None:
        io.write_text(self.path / "recipe.toml", to_toml(self.recipe.to_dict()))
        self.set_status("running")

    def set_status(self, status: str, reason: str | None = None) -> None:
        record = {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if reason:
            record["reason"] = reason
        io.write_text(self.path / "status.json", json.dumps(record, indent=2) + "\n")

    def resume_state(self) -> dict:
        found = list_checkpoints(self.checkpoints)
        if not found:
            raise KerasEdgeError(f"no checkpoint in {self.checkpoints} to resume from; run without --resume")
        return load_checkpoint(found[-1])

    def save_epoch(self, trainer, stage_index: int, epoch: int, elapsed_s: float) -> None:
        """After each epoch: checkpoint, metrics.csv and TensorBoard scalars."""
        ctx = trainer.ctx
        save_checkpoint(self.checkpoints, trainer.state(elapsed_s), ctx.model, ctx.optimizer)
        io.write_text(self.path / "metrics.csv", _csv(trainer.history))
        self._tensorboard(trainer.history[-1], ctx.global_step)

    def _tensorboard(self, row: dict, step: int) -> None:
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.path / "tensorboard"))
        with self._writer.as_default():
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    tf.summary.scalar(key, value, step=step)
        self._writer.flush()

    def finish(self, trainer, summary: dict) -> None:
        from keras_edge.plots import plot_history

        with io.atomic_path(self.path / "model.keras") as tmp:
            trainer.ctx.model.save(tmp)
        io.write_text(self.path / "summary.json", json.dumps(summary, indent=2, default=float) + "\n")
        if trainer.history:
            io.write_text(self.path / "metrics.csv", _csv(trainer.history))
            with io.atomic_path(self.path / "training_curves.png") as tmp:
                plot_history(trainer.history, tmp)
        self.set_status("finished")


def _csv(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = _stringio.StringIO()
    writer = csv.DictWriter(out, columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def run_recipe(recipe, out_dir=None, resume=False, force=False, extra_plugins=None) -> dict:
    """Train ``recipe``; with ``out_dir``, persist everything there. Returns the summary.

    ``extra_plugins`` maps names to plugin objects registered for this run only.
    """
    pm = get_plugin_manager(extra_plugins)
    folder = RunFolder(out_dir, recipe, resume, force) if out_dir is not None else None
    trainer = Trainer(recipe, pm, folder)
    with trainer.strategy.scope():
        state = folder.resume_state() if folder and resume else None
    if folder:
        folder.start()
    try:
        summary = trainer.run(resume=state)
    except BaseException as exc:
        if folder:
            reason = str(exc) if isinstance(exc, KerasEdgeError) else f"{type(exc).__name__}: {exc}"
            folder.set_status("failed", reason)
        raise
    if folder:
        folder.finish(trainer, summary)
        summary["run_dir"] = str(folder.path)
    return summary
