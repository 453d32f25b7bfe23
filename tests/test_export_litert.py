"""The exported training model runs in the stock LiteRT interpreter and matches TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from keras import layers  # noqa: E402

from keras_edge.errors import KerasEdgeError  # noqa: E402
from keras_edge.export.convert import flex_ops, op_names, signature_inputs, to_tflite  # noqa: E402
from keras_edge.export.trainer_module import TrainerModule  # noqa: E402
from keras_edge.export.weights import safe_name  # noqa: E402

BATCH, LR, MOMENTUM = 4, 0.05, 0.9
FULL = {"sample_weight": np.ones(BATCH, np.float32), "learning_rate": np.float32(0)}  # a full batch, the export's rate


def every_layer_model():
    """A tiny model with each layer kind the export supports (Dropout is in test_export_selection)."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((12, 12, 2))
    a = layers.Conv2D(6, 3, strides=2, padding="same", name="conv_s2")(inp)
    a = layers.ReLU(6.0)(layers.BatchNormalization(name="bn_a")(a))
    b = layers.DepthwiseConv2D(3, padding="same", name="dw")(a)
    b = layers.Activation("hard_silu")(layers.BatchNormalization(name="bn_b")(b))
    b = layers.Conv2D(6, 1, use_bias=False, name="project")(b)
    c = layers.Add()([a, b])
    c = layers.ReLU()(layers.Conv2D(5, 3, dilation_rate=2, padding="same", name="conv_d2")(c))
    d = layers.AveragePooling2D(2, strides=1)(layers.MaxPooling2D()(c))
    f = layers.Dense(8, activation="relu", name="fc")(layers.Flatten()(d))
    g = layers.GlobalAveragePooling2D()(c)
    out = layers.Add()([layers.Dense(3, name="head_f")(f), layers.Dense(3, name="head_g")(g)])
    model = keras.Model(inp, out)
    model.get_layer("bn_b").trainable = False  # a frozen batch norm runs in inference mode
    return model


def batches(steps, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((BATCH, 12, 12, 2), np.float32), rng.integers(0, 3, BATCH).astype(np.int32)) for _ in range(steps)]


def keras_reference(model, data):
    """The same steps with Keras' own gradients and SGD: losses, then the model trained."""
    opt = keras.optimizers.SGD(LR, momentum=MOMENTUM)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    losses = []
    for x, y in data:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        losses.append(float(loss))
    return losses


@pytest.fixture(scope="module")
def exported():
    model = every_layer_model()
    module = TrainerModule(model, batch_size=BATCH, learning_rate=LR, momentum=MOMENTUM, runtime_masks=True)
    return model, module, to_tflite(module)


def test_builtin_ops_only(exported):
    _, _, tflite = exported
    assert flex_ops(tflite) == set()
    names = op_names(tflite)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ASSIGN_VARIABLE"} <= names
    assert not any(n.startswith("Flex") or "Grad" in n for n in names)
    assert all(signature_inputs(tflite).values())  # Android's runSignature rejects an empty input map


def test_twenty_steps_match_tensorflow(exported):
    model, module, tflite = exported
    interpreter = Interpreter(model_content=tflite)
    train = interpreter.get_signature_runner("train")
    data = batches(2) * 10  # two batches, ten epochs: the loss must fall
    ones = np.ones(module.num_neurons, np.float32)
    lite_losses = [float(train(x=x, y=y, masks=ones, **FULL)["loss"]) for x, y in data]
    tf_losses = keras_reference(model, data)
    np.testing.assert_allclose(lite_losses, tf_losses, rtol=1e-4)
    assert lite_losses[-1] < lite_losses[0]
    lite_weights = interpreter.get_signature_runner("get_weights")(dummy=np.int32(0))
    for v in model.weights:  # trained weights and batch-norm moving statistics
        np.testing.assert_allclose(lite_weights[safe_name(v.path)], v.numpy(), rtol=1e-3, atol=1e-4, err_msg=v.path)
    logits = interpreter.get_signature_runner("infer")(x=data[0][0][:3])["logits"]
    np.testing.assert_allclose(logits, model(data[0][0][:3], training=False), rtol=1e-3, atol=1e-4)


def test_runtime_masks_freeze_neurons(exported):
    _, module, tflite = exported
    interpreter = Interpreter(model_content=tflite)
    before = interpreter.get_signature_runner("get_weights")(dummy=np.int32(0))
    masks = np.zeros(module.num_neurons, np.float32)
    offset, size = module.neuron_layout["conv_s2"]
    masks[offset] = 1.0  # train output channel 0 of conv_s2 only
    train = interpreter.get_signature_runner("train")
    for x, y in batches(3):
        train(x=x, y=y, masks=masks, **FULL)
    after = interpreter.get_signature_runner("get_weights")(dummy=np.int32(0))
    kernel = safe_name("conv_s2/kernel")
    assert not np.allclose(after[kernel][..., 0], before[kernel][..., 0])
    np.testing.assert_array_equal(after[kernel][..., 1:], before[kernel][..., 1:])
    for name in before:
        if name not in (kernel, "weights", "fingerprint", safe_name("conv_s2/bias")) and "moving" not in name:
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)


def test_set_weights_round_trip(exported):
    _, _, tflite = exported
    interpreter = Interpreter(model_content=tflite)
    saved = interpreter.get_signature_runner("get_weights")(dummy=np.int32(0))
    changed = saved["weights"] + 0.5
    status = interpreter.get_signature_runner("set_weights")(weights=changed, fingerprint=saved["fingerprint"])
    assert int(status["status"]) == 0
    restored = interpreter.get_signature_runner("get_weights")(dummy=np.int32(0))
    np.testing.assert_allclose(restored["weights"], changed)
    for name in saved:
        if name not in ("weights", "fingerprint"):
            np.testing.assert_allclose(restored[name], saved[name] + 0.5, err_msg=name)


def test_unsupported_layer_is_named():
    inp = keras.Input((8, 8, 1))
    out = layers.Dense(2)(layers.Flatten()(layers.LayerNormalization(name="odd_norm")(inp)))
    with pytest.raises(KerasEdgeError, match="odd_norm.*LayerNormalization"):
        TrainerModule(keras.Model(inp, out), batch_size=2).signatures()
