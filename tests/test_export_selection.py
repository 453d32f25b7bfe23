"""A fixed selection trains only the selected neurons, with state for those only."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from keras import layers  # noqa: E402

from keras_edge.errors import KerasEdgeError  # noqa: E402
from keras_edge.export.convert import flex_ops, op_counts, signature_inputs, to_tflite  # noqa: E402
from keras_edge.export.trainer_module import TrainerModule  # noqa: E402
from keras_edge.export.weights import safe_name  # noqa: E402

BATCH, LR, MOMENTUM = 4, 0.1, 0.9


def small_model():
    keras.utils.set_random_seed(2)
    inp = keras.Input((10, 10, 1))
    x = layers.ReLU()(layers.BatchNormalization(name="bn1")(layers.Conv2D(4, 3, name="conv1")(inp)))
    x = layers.ReLU(6.0)(layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(x))
    x = layers.Conv2D(6, 1, name="conv2")(x)
    x = layers.Dropout(0.3)(layers.GlobalMaxPooling2D()(x))
    return keras.Model(inp, layers.Dense(3, name="head")(x))


def selection_for(model):
    """conv1 and bn1 frozen; channels 0 and 2 of the depthwise kernel; one element of
    conv2 (a full-shape mask, as the NEq plugins write); all of the head."""
    sel = {v.path: np.zeros(v.shape, np.uint8) for v in model.trainable_variables}
    sel["dw/kernel"] = np.array([1, 0, 1, 0], np.uint8)
    sel["conv2/kernel"][0, 0, 2, 1] = 1
    sel["head/kernel"] = np.ones((6, 3), np.uint8)
    sel["head/bias"] = np.ones(3, np.uint8)
    return sel


@pytest.fixture(scope="module")
def selected():
    model = small_model()
    module = TrainerModule(model, batch_size=BATCH, learning_rate=LR, momentum=MOMENTUM, selection=selection_for(model))
    return model, module, to_tflite(module)


def test_only_selected_neurons_have_state(selected):
    _, module, _ = selected
    w = module.device_weights
    assert not w["conv1/kernel"].is_trained and not w["bn1/gamma"].is_trained
    assert tuple(w["dw/kernel"].velocity.shape) == (3, 3, 2)
    assert tuple(w["conv2/kernel"].velocity.shape) == (1, 1, 4, 1)  # one output channel
    assert module.describe()["trained_parameters"] == 3 * 3 * 2 + 4 + 6 * 3 + 3


def test_selected_training_in_litert(selected):
    model, _, tflite = selected
    assert flex_ops(tflite) == set()
    interpreter = Interpreter(model_content=tflite)
    before = interpreter.get_signature_runner("get_weights")(dummy=np.int32(0))
    rng = np.random.default_rng(0)
    train = interpreter.get_signature_runner("train")
    for _ in range(4):
        train(x=rng.random((BATCH, 10, 10, 1), np.float32), y=rng.integers(0, 3, BATCH).astype(np.int32),
              sample_weight=np.ones(BATCH, np.float32), learning_rate=np.float32(0))
    after = interpreter.get_signature_runner("get_weights")(dummy=np.int32(0))
    changed = {name: after[name] != before[name] for name in before}
    sel = selection_for(model)
    for v in model.trainable_variables:
        mask = np.broadcast_to(sel[v.path].reshape(1, 1, 4, 1) if v.path == "dw/kernel" else sel[v.path], v.shape)
        assert not changed[safe_name(v.path)][mask == 0].any(), v.path
        assert changed[safe_name(v.path)][mask == 1].all(), v.path
    assert (after[safe_name("bn1/moving_mean")] != before[safe_name("bn1/moving_mean")]).all()


@pytest.fixture(scope="module")
def full_with_flex(selected):
    return to_tflite(TrainerModule(selected[0], batch_size=BATCH), flex=True)


def test_frozen_layers_build_no_weight_gradient(selected, full_with_flex):
    _, _, tflite = selected
    full = full_with_flex
    convs = lambda t: op_counts(t)["CONV_2D"] + op_counts(t)["DEPTHWISE_CONV_2D"]  # noqa: E731
    # the frozen conv1 loses its weight-gradient convolution, and since nothing before the
    # depthwise layer trains, its input-gradient convolution goes too
    assert convs(full) - convs(tflite) == 2


def test_bad_selection_is_reported():
    model = small_model()
    with pytest.raises(KerasEdgeError, match="nope/kernel"):
        TrainerModule(model, selection={"nope/kernel": np.ones(3)})
    with pytest.raises(KerasEdgeError, match="conv1/kernel.*shape"):
        TrainerModule(model, selection={"conv1/kernel": np.ones(7)})


def test_flex_adds_save_restore_and_train_still_needs_no_flex(full_with_flex, selected):
    tflite = full_with_flex
    assert flex_ops(tflite) == {"FlexSave", "FlexRestore"}
    interpreter = Interpreter(model_content=tflite)
    assert {"train", "infer", "get_weights", "set_weights", "save", "restore"} == set(interpreter.get_signature_list())
    assert all(signature_inputs(tflite).values()) and all(signature_inputs(selected[2]).values())
    loss = interpreter.get_signature_runner("train")(x=np.zeros((BATCH, 10, 10, 1), np.float32), y=np.zeros(BATCH, np.int32),
                                                     sample_weight=np.ones(BATCH, np.float32), learning_rate=np.float32(0))
    assert np.isfinite(loss["loss"])
    with pytest.raises(Exception, match="Flex delegate"):
        interpreter.get_signature_runner("save")(checkpoint_path=np.array(b"unused"))
