"""Checkpoints (model, optimizer state, loop state) and the cache of trained stages."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import keras
import numpy as np

import keras_edge.models  # noqa: F401  (registers the zoo's BatchNorm class, so saved zoo models load)
from keras_edge import __version__, io
from keras_edge.errors import KerasEdgeError, PluginError

NAME = re.compile(r"^s(\d+)-e(\d+)$")
ARRAY = "__array__"
STATE_KEYS = {"stage_index", "epoch", "global_step", "history", "stage_results", "train_macs", "elapsed_s",
              "plugins"}


def save_checkpoint(folder: Path, state: dict, model, optimizer, keep: int = 2) -> Path:
    """Write ``s{stage}-e{epoch}`` atomically, then drop all but the newest ``keep``.

    NumPy arrays in the plugins' states go to ``plugins.npz``, the rest to ``state.json``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"s{state['stage_index']:02d}-e{state['epoch']:04d}"
    arrays: dict = {}
    state = {**state, "plugins": {name: _plugin_state(name, value, arrays)
                                  for name, value in state["plugins"].items()}}
    with io.atomic_path(target) as tmp:
        tmp.mkdir()
        model.save(tmp / "model.keras")
        np.savez(tmp / "variables.npz", *[np.asarray(v) for v in model.variables])  # RNG states too
        np.savez(tmp / "optimizer.npz", *[np.asarray(v) for v in optimizer.variables])
        np.savez(tmp / "plugins.npz", **arrays)
        (tmp / "state.json").write_text(json.dumps(state))
    for old in list_checkpoints(folder)[:-keep]:
        io.remove(old)
    return target


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if NAME.match(p.name) and (p / "state.json").exists()]
    return sorted(found, key=lambda p: tuple(int(g) for g in NAME.match(p.name).groups()))


def load_checkpoint(path: Path) -> dict:
    """The saved loop state with ``model`` (loaded) and ``optimizer`` (arrays) added."""
    try:
        state = json.loads((path / "state.json").read_text())
        missing = sorted(STATE_KEYS - set(state))
        if missing:
            raise ValueError(f"state.json lacks {missing}")
        state["model"] = model = keras.saving.load_model(path / "model.keras", compile=False)
        for var, value in zip(model.variables, _arrays(path / "variables.npz"), strict=True):
            var.assign(value)
        state["optimizer"] = _arrays(path / "optimizer.npz")
        with np.load(path / "plugins.npz") as arrays:
            state["plugins"] = _join_arrays(state["plugins"], arrays)
    except Exception as exc:
        raise KerasEdgeError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); delete it "
                             "to resume from the one before, or start again with --force") from exc
    return state


def _plugin_state(plugin: str, value, arrays: dict):
    """``value`` with each NumPy array moved to ``arrays`` and replaced by its key."""
    encoded = _split_arrays(value, arrays, plugin)
    try:
        json.dumps(encoded)
    except (TypeError, ValueError) as exc:
        raise PluginError(plugin, "state_dict", f"returned what a checkpoint cannot hold ({exc}); return "
                          "dicts, lists, numbers, strings and NumPy arrays") from exc
    return encoded


def _split_arrays(value, arrays: dict, key: str):
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {ARRAY: key}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _split_arrays(v, arrays, f"{key}/{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_arrays(v, arrays, f"{key}/{i}") for i, v in enumerate(value)]
    return value


def _join_arrays(value, arrays):
    if isinstance(value, dict):
        if set(value) == {ARRAY}:
            return arrays[value[ARRAY]]
        return {k: _join_arrays(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_arrays(v, arrays) for v in value]
    return value


def _arrays(path: Path) -> list:
    with np.load(path) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def restore_optimizer(optimizer, values: list) -> None:
    """Assign saved values to an optimizer built for the same variables."""
    if len(values) != len(optimizer.variables):
        raise KerasEdgeError(f"checkpoint optimizer has {len(values)} variables, the model needs "
                             f"{len(optimizer.variables)}; start again with --force")
    for var, value in zip(optimizer.variables, values):
        var.assign(value)


class StageCache:
    """A trained stage stored under a hash of everything that determines it."""

    def __init__(self, recipe, index: int):
        resolved = recipe.to_dict()
        key = json.dumps({"version": __version__, "model": resolved["model"],
                          "stages": [{k: v for k, v in s.items() if k != "cache"}
                                     for s in resolved["stages"][: index + 1]]}, sort_keys=True)
        root = Path(os.environ.get("KERAS_EDGE_CACHE", Path.home() / ".cache" / "keras-edge"))
        self.path = root / "stages" / hashlib.sha256(key.encode()).hexdigest()[:20]

    def hit(self) -> bool:
        return (self.path / "results.json").exists()

    def load(self):
        model = keras.saving.load_model(self.path / "model.keras", compile=False)
        if (self.path / "variables.npz").exists():  # RNG states, which model.keras does not keep
            for var, value in zip(model.variables, _arrays(self.path / "variables.npz"), strict=True):
                var.assign(value)
        return model

    def results(self) -> dict:
        return json.loads((self.path / "results.json").read_text())

    def save(self, model, results: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with io.atomic_path(self.path) as tmp:
            tmp.mkdir()
            model.save(tmp / "model.keras")
            np.savez(tmp / "variables.npz", *[np.asarray(v) for v in model.variables])
            (tmp / "results.json").write_text(json.dumps(results))
