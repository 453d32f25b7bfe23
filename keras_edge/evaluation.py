"""``keras-edge evaluate``: accuracy of a run's model plus plugin sections."""

from __future__ import annotations

import json
from pathlib import Path

import keras

from keras_edge import io
from keras_edge.errors import KerasEdgeError
from keras_edge.loop import Trainer
from keras_edge.plugins import call_impl, get_plugin_manager
from keras_edge.recipe import load_recipe
from keras_edge.step import evaluate

EVAL_BATCH = 512


def load_run(run_dir) -> Trainer:
    """A finished run: a ``Trainer`` whose ``ctx`` holds its recipe, last stage, data and model."""
    run_dir = Path(run_dir)
    for name in ("model.keras", "recipe.toml"):
        if not (run_dir / name).is_file():
            raise KerasEdgeError(f"{run_dir / name} not found; give the folder of a finished "
                                 "`keras-edge run` (see its status.json)")
    recipe = load_recipe(run_dir / "recipe.toml")
    trainer = Trainer(recipe, get_plugin_manager())
    ctx = trainer.ctx
    ctx.run_dir = run_dir
    ctx.stage_index = len(recipe.stages) - 1
    ctx.stage = recipe.stages[-1]
    ctx.options = ctx.stage.options
    ctx.data = trainer.load_data(ctx.stage.data)
    try:
        ctx.model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    except Exception as exc:  # Keras raises many types for damaged files and unsafe content
        raise KerasEdgeError(f"cannot load {run_dir / 'model.keras'} ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); it is damaged or not a "
                             "keras-edge model: run the recipe again") from None
    if tuple(ctx.model.input_shape[1:]) != tuple(ctx.data.input_shape):
        raise KerasEdgeError(f"{run_dir / 'model.keras'} takes inputs of shape {tuple(ctx.model.input_shape[1:])} "
                             f"but {run_dir / 'recipe.toml'} gives data of shape {ctx.data.input_shape}; "
                             "restore the run's own recipe.toml")
    return trainer


def evaluate_run(run_dir, split: str = "test", flags: dict | None = None) -> dict:
    """Evaluate ``run_dir/model.keras`` on the last stage's data; write evaluation.json."""
    trainer = load_run(run_dir)
    ctx, pm, run_dir = trainer.ctx, trainer.pm, Path(run_dir)
    result = evaluate(ctx.model, ctx.data.eval_dataset(split, EVAL_BATCH))
    report = {"split": split, "accuracy": result["accuracy"], "loss": result["loss"]}
    flags = flags or {}
    sections = 0
    for impl in pm.hook.evaluate_extra.get_hookimpls():  # every installed plugin, active or not
        section = call_impl(impl, ctx=ctx, model=ctx.model, flags=flags)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise KerasEdgeError(f"plugin {impl.plugin_name!r} returned {type(section).__name__} from "
                                 "evaluate_extra; it must return a dict")
        report.update(section)
        sections += 1
    wanted = [f"--{k}" for k, v in flags.items() if v]
    if wanted and not sections:
        raise KerasEdgeError(f"no installed plugin evaluates {' '.join(wanted)}; install the plugin that "
                             "provides it (see `keras-edge plugins`)")
    io.write_text(run_dir / "evaluation.json", json.dumps(report, indent=2, default=float) + "\n")
    return report
