"""Plugins under tf.distribute: NEq masks, OSG growth and DεpS subnets on 2 replicas match one device."""

import numpy as np
import pytest

from tests.conftest import finish, weights
from tests.plugin_runs import start

EPOCHS = {"neq_velocity": 3, "osg": 2, "deps": 2}  # enough for velocities, one growth, one shrinking epoch


@pytest.mark.parametrize("case", EPOCHS)
def test_mirrored_on_two_cpu_devices_matches_one_device(tmp_path, case):
    epochs = ("--epochs", str(EPOCHS[case]))
    one = start(case, tmp_path / "one", *epochs)
    two = start(case, tmp_path / "two", *epochs, "--distribute", "mirrored", env={"KERAS_EDGE_CPU_DEVICES": "2"})
    finish(one)
    finish(two)
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert [w.shape for w in a] == [w.shape for w in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-4)
