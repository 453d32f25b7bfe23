"""Plugin state survives a crash: NEq velocities, OSG growth, ERA views and DεpS sampling resume exactly."""

import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_edge_deps.supernet  # noqa: F401  (registers the supernet class for loading)

CRASHES = {  # (stage, epoch) at whose start each run fails, one resume after another
    "neq_velocity": [(0, 3)],  # velocities from the three earlier measurements are needed
    "osg_era": [(0, 1), (1, 1)],  # after the growth (it must not grow again); then mid-ERA
    "deps": [(0, 3)],  # mid-shrinking: the sampler's RNG and the ε ramp
}


def start(case, out, *args):
    return subprocess.Popen([sys.executable, "-m", "tests.plugin_runs", case, str(out), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc, expected=0):
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == expected, err


def weights(out):
    return [v.numpy() for v in keras.saving.load_model(out / "model.keras", compile=False).weights]


@pytest.mark.parametrize("case", CRASHES)
def test_a_crashed_run_resumes_to_the_same_weights(tmp_path, case):
    reference = start(case, tmp_path / "ref")
    resume = []
    for stage, epoch in CRASHES[case]:
        finish(start(case, tmp_path / "run", *resume, "--crash-at", str(stage), str(epoch)), expected=3)
        resume = ["--resume"]
    finish(start(case, tmp_path / "run", "--resume"))
    finish(reference)
    for a, b in zip(weights(tmp_path / "ref"), weights(tmp_path / "run"), strict=True):
        np.testing.assert_array_equal(a, b)
