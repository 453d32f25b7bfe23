"""Shared helpers: tiny recipes on synthetic data so the core tests take seconds, and
the weights of runs made in subprocesses."""

import copy
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

TINY = {
    "data": {"name": "synthetic", "synthetic_examples": 256, "synthetic_shape": [12, 12, 1],
             "synthetic_classes": 4, "batch_size": 32, "validation_fraction": 0.25},
    "model": {"name": "small_cnn", "width": 0.25},
    "train": {"epochs": 2, "optimizer": "sgd", "learning_rate": 0.05, "jit_compile": False},
}


def tiny(**sections):
    """The TINY recipe dict with sections updated, e.g. tiny(train={"epochs": 1})."""
    recipe = copy.deepcopy(TINY)
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(recipe.get(name), dict):
            recipe[name].update(values)
        else:
            recipe[name] = values
    return recipe


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """Stage caches go to a temporary folder."""
    path = tmp_path / "cache"
    monkeypatch.setenv("KERAS_EDGE_CACHE", str(path))
    return path


def finish(proc, expected=0):
    """Wait for a run's subprocess (5 minutes at most) and check its exit code."""
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == expected, err


def weights(run_dir):
    """All weights of a run's model.keras (it does not keep the dropout RNG state, checkpoints do)."""
    import keras

    return [v.numpy() for v in keras.saving.load_model(run_dir / "model.keras", compile=False).weights]
