"""`keras-edge export RUN_DIR` end to end, and the NumPy-only device simulator."""

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from keras_edge.errors import KerasEdgeError  # noqa: E402
from keras_edge.export.command import export, export_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = """
[data]
name = "synthetic"
synthetic_shape = [12, 12, 1]
synthetic_examples = 96
synthetic_classes = 3
batch_size = 8

[model]
name = "small_cnn"
width = 0.125
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as the loop leaves it, with a NEq-style selection (classifier only)."""
    import keras

    from keras_edge.models import build_model
    from keras_edge.recipe import parse_recipe

    folder = tmp_path_factory.mktemp("run")
    recipe = parse_recipe(RECIPE)
    keras.utils.set_random_seed(0)
    model = build_model(recipe.model, (12, 12, 1), 3)
    model.save(folder / "model.keras")
    (folder / "recipe.toml").write_text(RECIPE)
    (folder / "summary.json").write_text("{}")
    masks = {v.path: np.full(v.shape, v.path.startswith("classifier"), np.uint8) for v in model.trainable_variables}
    np.savez(folder / "selection.npz", **masks)
    return folder


@pytest.fixture(scope="module")
def exported(run_dir):
    out = run_dir / "device.tflite"
    result = CliRunner().invoke(export, [str(run_dir), "--out", str(out), "--batch-size", "8",
                                         "--learning-rate", "0.05", "--int8"], catch_exceptions=False)
    return out, result


def test_export_command_writes_models_and_report(exported):
    out, result = exported
    assert result.exit_code == 0, result.output
    assert "0 Flex ops" in result.output
    report = json.loads(Path(f"{out}.json").read_text())
    assert report["flex_ops"] == [] and report["selection"].endswith("selection.npz")
    assert report["trained_parameters"] == 16 * 3 + 3  # the classifier only
    q = report["int8"]
    assert 0.0 <= q["int8_test_accuracy"] <= 1.0
    assert q["accuracy_change"] == pytest.approx(q["int8_test_accuracy"] - q["float_test_accuracy"])
    assert Path(q["file"]).stat().st_size < out.stat().st_size


def test_device_simulator_trains_saves_and_restores_without_tensorflow(exported, tmp_path):
    out, _ = exported
    rng = np.random.default_rng(0)
    protos = rng.integers(0, 255, (3, 12, 12, 1))
    y = rng.integers(0, 3, 160)
    x = np.clip(protos[y] + rng.normal(0, 30, (160, 12, 12, 1)), 0, 255).astype(np.uint8)
    np.savez(tmp_path / "data.npz", x_train=x[:128], y_train=y[:128], x_test=x[128:], y_test=y[128:])
    code = (
        "import sys, json; sys.argv = sys.argv[:1]; sys.path.insert(0, 'tools'); import litert_train; "
        f"r = litert_train.main(['{out}', '--data', 'npz:{tmp_path / 'data.npz'}', '--epochs', '3', "
        f"'--weights-out', '{tmp_path / 'w.npz'}']); "
        "assert not any(m.startswith(('tensorflow', 'keras')) for m in sys.modules), 'imported TensorFlow'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert report["epoch_losses"][-1] < report["epoch_losses"][0]
    assert report["accuracy_restored"] == report["accuracy_after"]
    saved = np.load(tmp_path / "w.npz")
    assert "classifier_kernel" in saved.files


def test_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(KerasEdgeError, match="model.keras not found"):
        export_run(tmp_path)
