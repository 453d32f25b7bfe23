"""Int8 post-training quantisation of the inference signature, and LiteRT accuracy.

Quantisation-aware training through tensorflow-model-optimization is not offered:
its ``quantize_model`` accepts only ``tf_keras`` (Keras 2) models and rejects the
Keras 3 models keras-edge trains (see docs/deploy.md).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keras_edge.export.convert import saved_model_converter


def int8_inference_model(module, calibration_images) -> bytes:
    """An int8 ``infer``-only model calibrated on ``calibration_images`` (float32 NHWC
    in [0, 1]); float32 input and outputs, int8 weights and activations inside."""
    spec = tf.TensorSpec([None, *module.input_shape], tf.float32, name="x")
    infer = tf.function(module.infer, input_signature=[spec], autograph=False).get_concrete_function()
    with saved_model_converter(module, {"infer": infer}) as converter:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in calibration_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()


def litert_accuracy(tflite: bytes, images, labels, batch_size=256) -> float:
    """Top-1 accuracy of a model's ``infer`` signature in LiteRT."""
    interpreter = Interpreter(model_content=tflite)
    infer = interpreter.get_signature_runner("infer")
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = infer(x=np.asarray(images[start : start + batch_size], np.float32))["logits"]
        correct += int(np.sum(np.argmax(logits, -1) == labels[start : start + batch_size]))
    return correct / len(images)
