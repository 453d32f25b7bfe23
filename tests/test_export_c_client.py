"""examples/c-client: the C program builds against the ai-edge-litert wheel's libLiteRt.so,
trains an exported model (a padded short batch included) exactly as the Python runtime
does, saves and restores weights, and refuses the weights of another model."""

import os
import shutil
import subprocess
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import ai_edge_litert  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMPILER = shutil.which("gcc") or shutil.which("cc")
LIB = Path(ai_edge_litert.__file__).parent
pytestmark = pytest.mark.skipif(COMPILER is None or not (LIB / "libLiteRt.so").is_file(),
                                reason="needs a C compiler and the ai-edge-litert wheel's libLiteRt.so")
BATCH, N = 4, 10  # 10 images: batches of 4, 4 and a short one of 2 (padded)


def write_idx(path, array):
    path.write_bytes(bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
                     + array.tobytes())


def export(seed, channels):
    """A tiny Conv-BN-ReLU-pool-Dense model exported with batch 4."""
    import keras
    from keras import layers

    from keras_edge.export.convert import to_tflite
    from keras_edge.export.trainer_module import TrainerModule

    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(channels, 3, name="conv")(inp)))
    model = keras.Model(inp, layers.Dense(3, name="head")(layers.GlobalAveragePooling2D()(x)))
    return to_tflite(TrainerModule(model, batch_size=BATCH, learning_rate=0.05))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("c_client")
    binary = folder / "keras_edge_train"
    build = [COMPILER, "-O2", "-std=c11", "-o", str(binary), str(ROOT / "examples/c-client/keras_edge_train.c"),
             f"-L{LIB}", "-lLiteRt", f"-Wl,-rpath,{LIB}"]
    done = subprocess.run(build, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (N, 8, 8, 1), dtype=np.uint8), rng.integers(0, 3, N).astype(np.uint8)
    write_idx(folder / "images.idx", images)
    write_idx(folder / "labels.idx", labels)
    (folder / "model.tflite").write_bytes(export(0, 4))
    return folder, binary, images, labels


def run_client(folder, binary, model, steps, *options):
    return subprocess.run([str(binary), str(folder / model), str(folder / "images.idx"), str(folder / "labels.idx"),
                           str(steps), *map(str, options)], capture_output=True, text=True, timeout=120)


def test_c_client_trains_like_python_and_restores(built):
    from ai_edge_litert.interpreter import Interpreter

    folder, binary, images, labels = built
    done = run_client(folder, binary, "model.tflite", 3, "--save", folder / "w.bin")
    assert done.returncode == 0, done.stderr[-2000:]
    c_losses = [float(line.split()[3]) for line in done.stdout.splitlines() if line.startswith("step")]
    assert "examples_used 2" in done.stdout.splitlines()[2]  # the padded short batch

    interpreter = Interpreter(model_path=str(folder / "model.tflite"))
    train = interpreter.get_signature_runner("train")
    py_losses = []
    for start in (0, 4, 8):
        real = min(BATCH, N - start)
        idx = np.array([start + b if b < real else start for b in range(BATCH)])
        weight = (np.arange(BATCH) < real).astype(np.float32)
        out = train(x=images[idx].astype(np.float32) / 255.0, y=labels[idx].astype(np.int32), sample_weight=weight,
                    learning_rate=np.float32(0))
        py_losses.append(float(out["loss"]))
    np.testing.assert_allclose(c_losses, py_losses, rtol=1e-4)
    raw = (folder / "w.bin").read_bytes()
    assert raw[:4] == b"KEW1"
    saved = np.frombuffer(raw, "<f4", offset=24)
    expected = interpreter.get_signature_runner("get_weights")(dummy=np.int32(0))
    np.testing.assert_allclose(saved, expected["weights"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.frombuffer(raw[4:20], "<i4"), expected["fingerprint"])

    again = run_client(folder, binary, "model.tflite", 1, "--restore", folder / "w.bin")
    assert again.returncode == 0 and "restored" in again.stdout, again.stderr[-2000:]


def test_c_client_refuses_weights_of_another_model(built):
    folder, binary, _, _ = built
    other = np.arange(60, dtype="<f4")  # another model's file: its own fingerprint and size
    (folder / "other.bin").write_bytes(b"KEW1" + np.array([1, 2, 3, 4, len(other)], "<i4").tobytes() + other.tobytes())
    done = run_client(folder, binary, "model.tflite", 1, "--restore", folder / "other.bin")
    assert done.returncode == 2 and "another model" in done.stderr
    (folder / "junk.bin").write_bytes(b"not weights")
    done = run_client(folder, binary, "model.tflite", 1, "--restore", folder / "junk.bin")
    assert done.returncode == 2 and "not a weights file" in done.stderr
