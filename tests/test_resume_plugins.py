"""Plugin state survives a crash: NEq velocities, OSG growth, ERA views and DεpS sampling resume exactly."""

import numpy as np
import pytest

from tests.conftest import finish, weights
from tests.plugin_runs import start

CRASHES = {  # (stage, epoch) at whose start each run fails, one resume after another
    "neq_velocity": [(0, 3)],  # velocities from the three earlier measurements are needed
    "osg_era": [(0, 1), (1, 1)],  # after the growth (it must not grow again); then mid-ERA
    "deps": [(0, 3)],  # mid-shrinking: the sampler's RNG and the ε ramp
}


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
