"""Quantisation-aware training through a tf_keras twin (the export end to end, with
--qat-epochs, is in test_export_command.py)."""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import layers  # noqa: E402
from test_export_litert import every_layer_model  # noqa: E402

from keras_edge.errors import KerasEdgeError  # noqa: E402
from keras_edge.export.qat import check_twin, qat_int8_model, tf_keras_twin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_twin_of_every_exported_layer_matches_keras():
    model = every_layer_model()
    twin = tf_keras_twin(model)
    images = np.random.default_rng(0).random((8, 12, 12, 2), np.float32)
    assert check_twin(model, twin, images) <= 1e-5
    assert type(twin).__module__.startswith("tf_keras")
    assert [w.shape for w in twin.get_weights()] == [tuple(w.shape) for w in model.weights]


def test_layer_without_twin_is_named():
    inp = keras.Input((8, 8, 1))
    out = layers.Dense(2)(layers.Flatten()(layers.LayerNormalization(name="odd_norm")(inp)))
    with pytest.raises(KerasEdgeError, match="odd_norm.*LayerNormalization.*no tf_keras twin"):
        tf_keras_twin(keras.Model(inp, out))


def test_layer_tfmot_cannot_quantise_is_a_clear_error():
    inp = keras.Input((6, 6, 1))
    x = layers.Activation("hard_silu", name="hs")(layers.Conv2D(2, 3, name="conv")(inp))
    model = keras.Model(inp, layers.Dense(2)(layers.Flatten()(x)))
    images = np.random.default_rng(1).random((4, 6, 6, 1), np.float32)
    with pytest.raises(KerasEdgeError, match="tensorflow-model-optimization cannot quantise"):
        qat_int8_model(model, images, np.zeros(4, np.int32), epochs=1, batch_size=4)


def test_bench_qat_quick_writes_units_and_a_verdict(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import bench_qat
    finally:
        sys.path.remove(str(ROOT / "tools"))
    report = bench_qat.main(["--quick", "--out", str(tmp_path)])
    units = report["runs"]["quick_run"]["units"]
    assert set(units) == {"float", "ptq", "qat_seed0", "finetune_ptq_seed0"}
    assert all(u["bytes"] > 0 and 0 <= u["test_accuracy"] <= 1 for u in units.values())
    assert units["ptq"]["bytes"] < units["float"]["bytes"]
    assert report["verdict"] == {"quick_run": "too few seeds", "units_missing": 0}
    (tmp_path / "units" / "quick_run__qat_seed0.json").unlink()  # a partial set still assembles
    partial = bench_qat.assemble([str(tmp_path / "quick_run")], tmp_path, 1, [0])
    assert partial["verdict"]["units_missing"] == 1
    assert json.loads((tmp_path / "bench_qat.json").read_text())["verdict"]["units_missing"] == 0
