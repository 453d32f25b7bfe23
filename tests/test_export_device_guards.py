"""What an app meets on the device, checked in LiteRT: signatures callable from Android,
validated set_weights, guards inside train, the learning-rate input, padded batches."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from keras import layers  # noqa: E402
from test_export_litert import BATCH, LR, MOMENTUM, batches, every_layer_model, keras_reference  # noqa: E402

from keras_edge.errors import KerasEdgeError  # noqa: E402
from keras_edge.export.convert import signature_inputs, to_tflite  # noqa: E402
from keras_edge.export.trainer_module import TrainerModule  # noqa: E402

ONES = np.ones(BATCH, np.float32)
DEFAULT_RATE = np.float32(0)


def overflow_model():
    """A model whose loss overflows to NaN when pixel (0, 0) of an image is 1 (a valid
    image), so a non-finite step can be provoked without touching the weights."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 12, 2))
    a = layers.GlobalAveragePooling2D()(layers.ReLU()(layers.BatchNormalization(name="bn")(layers.Conv2D(3, 3, name="conv")(inp))))
    head = layers.Dense(3, name="head")
    out = layers.Add()([head(layers.Flatten()(inp)), layers.Dense(3, name="side")(a)])
    model = keras.Model(inp, out)
    kernel = np.asarray(head.kernel) * 0.01
    kernel[0] = [3e38, -3e38, 0.0]
    head.kernel.assign(kernel)
    return model


@pytest.fixture(scope="module")
def every_layer():
    model = every_layer_model()
    return model, to_tflite(TrainerModule(model, batch_size=BATCH, learning_rate=LR, momentum=MOMENTUM))


@pytest.fixture(scope="module")
def overflow():
    return to_tflite(TrainerModule(overflow_model(), batch_size=BATCH, learning_rate=LR, momentum=MOMENTUM))


def runners(tflite):
    interpreter = Interpreter(model_content=tflite)
    return {key: interpreter.get_signature_runner(key) for key in interpreter.get_signature_list()}


def weights(run):
    return run["get_weights"](dummy=np.int32(0))


def test_every_signature_of_every_export_has_an_input(every_layer, overflow):
    """TFLite's Java runSignature throws for an empty input map (get_weights() had none).
    The exports of test_export_litert (runtime masks), test_export_selection (selection,
    --flex) and test_export_command (the CLI) assert the same."""
    for tflite in (every_layer[1], overflow):
        inputs = signature_inputs(tflite)
        assert set(inputs) == {"train", "infer", "get_weights", "set_weights"}
        assert all(inputs.values()), inputs


def test_set_weights_rejects_wrong_length_and_other_models_without_crashing(every_layer, overflow):
    run, other = runners(every_layer[1]), runners(overflow)
    saved = weights(run)
    vector, fingerprint = saved["weights"], saved["fingerprint"]
    wrong = {
        "short": (vector[:-7], fingerprint, 2),
        "four times too long": (np.tile(vector, 4), fingerprint, 2),  # this size segfaulted before
        "empty": (vector[:0], fingerprint, 2),
        "another model": (weights(other)["weights"], weights(other)["fingerprint"], 1),
        "no fingerprint": (vector, fingerprint[:0], 1),
    }
    for case, (w, fp, status) in wrong.items():
        out = run["set_weights"](weights=w + 1.0, fingerprint=fp)
        assert int(out["status"]) == status, case
        assert int(out["weights_set"]) == 0, case
        np.testing.assert_array_equal(weights(run)["weights"], vector, err_msg=case)  # nothing changed
    assert int(run["set_weights"](weights=vector + 1.0, fingerprint=fingerprint)["status"]) == 0
    np.testing.assert_allclose(weights(run)["weights"], vector + 1.0)


def test_bad_examples_are_left_out_and_counted(every_layer):
    """A NaN pixel, pixels in [0, 255] and labels outside [0, 3) leave the step exactly
    as if those examples were padding (weight 0)."""
    (x, y), = batches(1, seed=5)
    bad_x, bad_y = x.copy(), y.copy()
    bad_x[1, 3, 3, 0] = np.nan
    bad_x[2] *= 255.0
    bad_y[3] = 7
    guarded, padded = runners(every_layer[1]), runners(every_layer[1])
    out = guarded["train"](x=bad_x, y=bad_y, sample_weight=ONES, learning_rate=DEFAULT_RATE)
    assert (int(out["examples_used"]), int(out["bad_images"]), int(out["bad_labels"]), int(out["applied"])) == (1, 2, 1, 1)
    reference = padded["train"](x=x, y=y, sample_weight=np.array([1, 0, 0, 0], np.float32), learning_rate=DEFAULT_RATE)
    assert np.isfinite(out["loss"]) and float(out["loss"]) == pytest.approx(float(reference["loss"]), rel=1e-6)
    np.testing.assert_allclose(weights(guarded)["weights"], weights(padded)["weights"], rtol=1e-6, atol=1e-7)
    nothing = guarded["train"](x=x * 255.0, y=y, sample_weight=ONES, learning_rate=DEFAULT_RATE)
    assert (int(nothing["examples_used"]), int(nothing["bad_images"]), int(nothing["applied"])) == (0, BATCH, 0)


def test_non_finite_step_changes_no_weight_statistic_or_momentum(overflow):
    (x, y), (x2, y2) = batches(2, seed=6)
    x[:, 0, 0, 0], x2[:, 0, 0, 0] = 0.0, 0.0  # finite loss
    poison = x.copy()
    poison[0, 0, 0, 0] = 1.0  # a valid pixel that overflows the loss
    hit, clean = runners(overflow), runners(overflow)
    for run in (hit, clean):
        assert int(run["train"](x=x, y=y, sample_weight=ONES, learning_rate=DEFAULT_RATE)["applied"]) == 1
    before = weights(hit)
    out = hit["train"](x=poison, y=y, sample_weight=ONES, learning_rate=DEFAULT_RATE)
    assert not np.isfinite(out["loss"]) and int(out["applied"]) == 0
    np.testing.assert_array_equal(weights(hit)["weights"], before["weights"])  # incl. batch-norm statistics
    for run in (hit, clean):  # equal next steps: the momentum did not change either
        run["train"](x=x2, y=y2, sample_weight=ONES, learning_rate=DEFAULT_RATE)
    np.testing.assert_array_equal(weights(hit)["weights"], weights(clean)["weights"])


def test_learning_rate_is_an_input_with_the_export_default(every_layer):
    (x, y), = batches(1, seed=7)
    trained = [v.path.replace("/", "_") for v in every_layer[0].trainable_weights]

    def step(rate):
        run = runners(every_layer[1])
        start = weights(run)
        run["train"](x=x, y=y, sample_weight=ONES, learning_rate=np.float32(rate))
        return np.concatenate([(weights(run)[name] - start[name]).ravel() for name in trained])

    default = step(LR)
    for rate in (0.0, -1.0, np.nan):  # 0, negative and NaN mean the export's rate
        np.testing.assert_array_equal(step(rate), default)
    moved = np.abs(default) > 1e-6  # the first step has no momentum: twice the rate, twice the step
    np.testing.assert_allclose(step(2 * LR)[moved], 2 * default[moved], rtol=1e-3, atol=1e-7)


def test_padded_short_batch_trains_like_keras_on_the_short_batch(every_layer):
    """Three real examples and one padding example (weight 0, garbage pixels) train
    exactly as Keras does on the batch of three, batch-norm statistics included."""
    model, tflite = every_layer
    run = runners(tflite)
    data = [(x[:3], y[:3]) for x, y in batches(3, seed=8)]
    garbage = np.random.default_rng(9).random((1, 12, 12, 2), np.float32)
    weight = np.array([1, 1, 1, 0], np.float32)
    lite = [float(run["train"](x=np.concatenate([x, garbage]), y=np.r_[y, 2].astype(np.int32), sample_weight=weight,
                               learning_rate=DEFAULT_RATE)["loss"]) for x, y in data]
    np.testing.assert_allclose(lite, keras_reference(model, data), rtol=1e-4)
    got = run["get_weights"](dummy=np.int32(0))
    for v in model.weights:
        np.testing.assert_allclose(got[v.path.replace("/", "_")], v.numpy(), rtol=1e-3, atol=1e-4, err_msg=v.path)


def test_export_refuses_a_signature_without_inputs():
    class NoInput(TrainerModule):
        def signatures(self, flex=False):
            found = super().signatures(flex)
            import tensorflow as tf

            found["get_weights"] = tf.function(lambda: {"one": tf.constant(1.0)}, input_signature=[]).get_concrete_function()
            return found

    inp = keras.Input((4, 4, 1))
    with pytest.raises(KerasEdgeError, match="no input"):
        to_tflite(NoInput(keras.Model(inp, layers.Dense(2)(layers.Flatten()(inp))), batch_size=2))
