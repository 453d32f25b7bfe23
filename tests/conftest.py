"""Shared helpers: tiny recipes on synthetic data so the core tests take seconds, and
the weights of runs made in subprocesses."""

from keras_edge.testing import TINY_RECIPE as TINY  # noqa: F401  (one source for tests and plugin authors)
from keras_edge.testing import tiny_recipe as tiny  # noqa: F401


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
