"""tools/fused_bn_determinism.py's worker trains the experiment's model and records every step."""

import sys
from pathlib import Path

import numpy as np

from keras_edge.models import batch_norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import fused_bn_determinism  # noqa: E402


def test_worker_records_losses_and_weights_per_step(tmp_path, monkeypatch):
    monkeypatch.setattr(batch_norm, "fused_allowed", batch_norm.fused_allowed)  # the worker replaces it
    monkeypatch.setenv("FUSED_BN_WEIGHTS", str(tmp_path / "w.npz"))
    result = fused_bn_determinism.worker(fused=True, deterministic=False)
    assert len(result["losses"]) == 6 and all(np.isfinite(result["losses"]))
    with np.load(tmp_path / "w.npz") as saved:
        assert {key.split("/")[0] for key in saved.files} == {str(i) for i in range(6)}
        assert not np.array_equal(saved["0/conv1/kernel"], saved["5/conv1/kernel"])
