"""Latency of an extracted subnet, measured by running it in the LiteRT interpreter."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf


def inference_tflite(model) -> bytes:
    """Plain inference conversion (builtin ops, batch of one, float32)."""
    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    function = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    # No trackable object: passing the Keras 3 model makes the converter read garbage weights.
    return tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()]).convert()


def latency_ms(model, runs: int = 50, warmup: int = 5, threads: int = 1) -> float:
    """Median wall time (ms) of one single-example invoke of ``model`` converted to TFLite."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=inference_tflite(model), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.random.default_rng(0).random(detail["shape"], np.float32))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))
