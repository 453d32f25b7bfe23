"""``keras-edge evaluate``: accuracy of a run's model plus plugin sections."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras

from keras_edge import io
from keras_edge.context import RunContext
from keras_edge.data import BUILTIN_DATASETS, load_data
from keras_edge.dispatch import Hooks, checked
from keras_edge.errors import KerasEdgeError
from keras_edge.model_setup import registry
from keras_edge.plugins import get_plugin_manager
from keras_edge.recipe import load_recipe
from keras_edge.step import EVAL_BATCH, evaluate


@dataclasses.dataclass
class FinishedRun:
    """A finished run: its context (recipe, last stage, data, model) and its plugins' hooks."""

    ctx: RunContext
    hooks: Hooks


def load_run(run_dir) -> FinishedRun:
    """The recipe, last stage, data and trained model of the run in ``run_dir``."""
    run_dir = Path(run_dir)
    for name in ("model.keras", "recipe.toml"):
        if not (run_dir / name).is_file():
            raise KerasEdgeError(f"{run_dir / name} not found; give the folder of a finished "
                                 "`keras-edge run` (see its status.json)")
    recipe = load_recipe(run_dir / "recipe.toml")
    hooks = Hooks(get_plugin_manager(), recipe)
    stage = recipe.stages[-1]
    hooks.for_stage(stage)
    ctx = RunContext(recipe=recipe, run_dir=run_dir, stage=stage, stage_index=len(recipe.stages) - 1)
    ctx.data = load_data(stage.data, registry(BUILTIN_DATASETS, hooks, "register_datasets"))
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
    return FinishedRun(ctx, hooks)


def evaluate_run(run_dir, split: str = "test", flags: dict | None = None) -> dict:
    """Evaluate ``run_dir/model.keras`` on the last stage's data; write evaluation.json."""
    run = load_run(run_dir)
    ctx, run_dir = run.ctx, Path(run_dir)
    result = evaluate(ctx.model, ctx.data.eval_dataset(split, EVAL_BATCH))
    report = {"split": split, "accuracy": result["accuracy"], "loss": result["loss"]}
    flags = flags or {}
    sections = run.hooks.every("evaluate_extra", ctx=ctx, model=ctx.model, flags=flags)  # active or not
    for plugin, section in sections:
        report.update(checked(plugin, "evaluate_extra", section, dict, "return {section: result} or None"))
    wanted = [f"--{k}" for k, v in flags.items() if v]
    if wanted and not sections:
        raise KerasEdgeError(f"no installed plugin evaluates {' '.join(wanted)}; install the plugin that "
                             "provides it (see `keras-edge plugins`)")
    io.write_text(run_dir / "evaluation.json", json.dumps(report, indent=2, default=float) + "\n")
    return report
