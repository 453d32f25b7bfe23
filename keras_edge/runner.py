"""Run a recipe into a run folder: the entry point of ``keras-edge run``."""

from __future__ import annotations

from keras_edge.errors import KerasEdgeError, RunInterrupted
from keras_edge.loop import Trainer
from keras_edge.plugins import get_plugin_manager
from keras_edge.run_folder import RunFolder


def run_recipe(recipe, out_dir=None, resume=False, force=False, extra_plugins=None, callbacks=()) -> dict:
    """Train ``recipe``; with ``out_dir``, persist everything there. Returns the summary.

    ``extra_plugins`` maps names to plugin objects registered for this run only;
    ``callbacks`` are ``keras.callbacks.Callback`` objects run inside the loop.
    """
    pm = get_plugin_manager(extra_plugins)
    pm.get_plugin("keras_callbacks").python_callbacks = list(callbacks)
    if out_dir is None:
        return Trainer(recipe, pm).run()
    folder = RunFolder(out_dir, recipe, resume, force)
    try:
        pm.register(folder, name="run_folder")
        trainer = Trainer(recipe, pm, folder.path)
        with trainer.strategy.scope():
            state = folder.resume_state() if resume else None
        folder.start()
        summary = trainer.run(resume=state)
        folder.drop_replaced()
        folder.set_status("finished")
    except KeyboardInterrupt:
        if folder.restore_replaced():
            raise RunInterrupted(f"interrupted; the earlier run in {folder.path} is kept") from None
        folder.set_status("interrupted", "stopped by Ctrl-C or SIGTERM")
        raise RunInterrupted(f"interrupted; continue with `keras-edge run {folder.path / 'recipe.toml'} "
                             f"--out {folder.path} --resume`") from None
    except BaseException as exc:
        if not folder.restore_replaced():
            reason = str(exc) if isinstance(exc, KerasEdgeError) else f"{type(exc).__name__}: {exc}"
            folder.set_status("failed", reason)
        raise
    finally:
        folder.close()
    summary["run_dir"] = str(folder.path)
    return summary
