"""Int8 post-training quantisation of the inference signature, and LiteRT accuracy
(quantisation-aware training is in ``qat``)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keras_edge.export.convert import saved_model_converter


def inference_model(module, calibration_images=None) -> bytes:
    """The ``infer`` signature alone: float32, or with ``calibration_images`` (float32
    NHWC in [0, 1]) int8 weights and activations inside, float32 input and outputs."""
    spec = tf.TensorSpec([None, *module.input_shape], tf.float32, name="x")
    infer = tf.function(module.infer, input_signature=[spec], autograph=False).get_concrete_function()
    with saved_model_converter(module, {"infer": infer}) as converter:
        if calibration_images is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image[None]] for image in calibration_images)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()


def litert_accuracy(tflite: bytes, images, labels, batch_size=256) -> float:
    """Top-1 accuracy in LiteRT of a model's ``infer`` signature (its only signature
    when it has no ``infer``, as a converted Keras model) on float images."""
    interpreter = Interpreter(model_content=tflite)
    signatures = interpreter.get_signature_list()
    key = "infer" if "infer" in signatures else next(iter(signatures))
    runner = interpreter.get_signature_runner(key)
    (name,) = signatures[key]["inputs"]
    output = "logits" if "logits" in signatures[key]["outputs"] else signatures[key]["outputs"][0]
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = runner(**{name: np.asarray(images[start : start + batch_size], np.float32)})[output]
        correct += int(np.sum(np.argmax(logits, -1) == labels[start : start + batch_size]))
    return correct / len(images)
