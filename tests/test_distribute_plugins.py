"""Plugins under tf.distribute: NEq masks, OSG growth and DεpS subnets on 2 replicas match one device."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_edge_deps.supernet  # noqa: F401  (registers the supernet class for loading)


EPOCHS = {"neq_velocity": 3, "osg": 2, "deps": 2}  # enough for velocities, one growth, one shrinking epoch


def run(case, out, distribute, devices):
    env = {**os.environ, "KERAS_EDGE_CPU_DEVICES": str(devices)}
    args = [case, str(out), "--distribute", distribute, "--epochs", str(EPOCHS[case])]
    return subprocess.Popen([sys.executable, "-m", "tests.plugin_runs", *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc):
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err


def weights(out):
    return [v.numpy() for v in keras.saving.load_model(out / "model.keras", compile=False).weights]


@pytest.mark.parametrize("case", EPOCHS)
def test_mirrored_on_two_cpu_devices_matches_one_device(tmp_path, case):
    one, two = run(case, tmp_path / "one", "none", 1), run(case, tmp_path / "two", "mirrored", 2)
    finish(one)
    finish(two)
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert [w.shape for w in a] == [w.shape for w in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-4)
