"""Quantisation-aware training with tensorflow-model-optimization, through a tf_keras twin.

tensorflow-model-optimization 0.8 quantises only ``tf_keras`` (Keras 2) models, and
keras-edge trains Keras 3 models. ``tf_keras_twin`` rebuilds a functional Keras 3
model layer by layer in ``tf_keras`` (the layer set the TFLite export supports),
copies the weights and checks that both give the same outputs; ``qat_int8_model``
fine-tunes the twin with tfmot's fake quantisation and converts it to an int8 TFLite
model (float32 input and output, like the post-training int8 model).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_edge import _compat
from keras_edge.errors import KerasEdgeError

TWIN_TOLERANCE = 1e-5
QAT_LEARNING_RATE = 1e-5  # Adam; measured better than 1e-4 on MobileNetV2 (docs/deploy.md)
TWINNED = (
    "Conv2D, DepthwiseConv2D, Dense, BatchNormalization, ReLU, Activation (relu, relu6, hard_silu, linear), "
    "MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Add, Flatten, Reshape, "
    "ZeroPadding2D, Rescaling, Dropout"
)


def hard_silu(x):
    """Keras 3's hard_silu (tf_keras has no such activation): x * relu6(x + 3) / 6."""
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def tf_keras_twin(model):
    """A ``tf_keras`` model with ``model``'s graph and weights (``model``: functional Keras 3).

    Raises ``KerasEdgeError`` naming the first layer that has no twin."""
    import tf_keras

    from keras_edge.export.trainer_module import _functional

    graph = _functional(model)
    inputs = tf_keras.Input(shape=tuple(graph.inputs[0].shape[1:]), name="x")
    twins = {}  # id(Keras 3 layer) -> its twin, so a shared layer stays shared

    def operation_fn(op):
        if _compat.is_functional_graph(op):  # a nested functional model
            return lambda *args, **kwargs: _compat.run_through_graph(_functional(op), args[0], operation_fn)
        first = id(op) not in twins
        if first:
            twins[id(op)] = _twin_layer(op, tf_keras.layers)
        return lambda *args, **kwargs: _call_twin(op, twins[id(op)], args, first)

    outputs = _compat.run_through_graph(graph, inputs, operation_fn)
    return tf_keras.Model(inputs, outputs, name=f"{model.name}_tf_keras")


def check_twin(model, twin, images) -> float:
    """Largest absolute difference between the two models' outputs on ``images``;
    raises ``KerasEdgeError`` above ``TWIN_TOLERANCE``."""
    ours = np.asarray(twin(images, training=False))
    theirs = np.asarray(model(images, training=False))
    gap = float(np.max(np.abs(ours - theirs)))
    if not gap <= TWIN_TOLERANCE:
        raise KerasEdgeError(f"the tf_keras twin differs from the Keras model by {gap:.2e} (> {TWIN_TOLERANCE}); "
                             "quantisation-aware training would start from another model")
    return gap


def qat_int8_model(model, x_train, y_train, *, epochs, batch_size=128, learning_rate=QAT_LEARNING_RATE, seed=0,
                   check_images=None, quantisation_aware=True, calibration_images=None):
    """Fine-tune a twin of ``model`` on float images in [0, 1] and return ``(int8 TFLite
    bytes, twin gap)``: quantisation-aware (tfmot fake quantisation, then conversion),
    or with ``quantisation_aware=False`` the same fine-tuning in float followed by
    post-training quantisation calibrated on ``calibration_images`` (the control at
    equal training cost)."""
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    twin = tf_keras_twin(model)
    gap = check_twin(model, twin, x_train[:64] if check_images is None else check_images)
    trained = _quantisation_aware(twin) if quantisation_aware else twin
    trained.compile(optimizer=tf_keras.optimizers.Adam(learning_rate),
                    loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trained.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(trained)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if not quantisation_aware:
        converter.representative_dataset = lambda: ([image[None]] for image in calibration_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert(), gap


def _quantisation_aware(twin):
    import tensorflow_model_optimization as tfmot

    try:
        with tfmot.quantization.keras.quantize_scope({"hard_silu": hard_silu}):
            return tfmot.quantization.keras.quantize_model(twin)
    except (RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KerasEdgeError(f"tensorflow-model-optimization cannot quantise this model: {first}") from exc


def _call_twin(op, twin, args, first):
    """Call the twin on the twin graph's tensors; the first call builds it and copies the weights."""
    x = args[0]
    out = twin(list(x) if isinstance(x, (list, tuple)) else x)
    if first and op.weights:
        twin.set_weights([np.asarray(v) for v in op.weights])
    return out


def _twin_layer(layer, L):
    """The tf_keras layer equal to a Keras 3 layer (same name and settings, no weights yet)."""
    from keras import layers as K

    from keras_edge.export.layers import activation as exported_activation

    kind = type(layer).__name__

    def act(fn):
        exported_activation(layer, fn)  # the same activations as the export, or its error
        name = getattr(fn, "__name__", str(fn))
        return hard_silu if name in ("hard_silu", "hard_swish") else name

    common = {"name": layer.name}
    if isinstance(layer, K.DepthwiseConv2D):
        return L.DepthwiseConv2D(layer.kernel_size, layer.strides, layer.padding, depth_multiplier=layer.depth_multiplier,
                                 dilation_rate=layer.dilation_rate, use_bias=layer.use_bias,
                                 activation=act(layer.activation), **common)
    if isinstance(layer, K.Conv2D) and kind == "Conv2D" and layer.groups == 1:
        return L.Conv2D(layer.filters, layer.kernel_size, layer.strides, layer.padding, dilation_rate=layer.dilation_rate,
                        use_bias=layer.use_bias, activation=act(layer.activation), **common)
    if kind == "Dense":
        return L.Dense(layer.units, use_bias=layer.use_bias, activation=act(layer.activation), **common)
    if kind == "BatchNormalization" and layer.axis in (-1, 3, [3]) and not layer.renorm:
        return L.BatchNormalization(axis=-1, momentum=layer.momentum, epsilon=layer.epsilon, center=layer.center,
                                    scale=layer.scale, trainable=layer.trainable, **common)
    if kind == "ReLU":
        return L.ReLU(max_value=layer.max_value, negative_slope=layer.negative_slope, threshold=layer.threshold, **common)
    if kind == "Activation":
        return L.Activation(act(layer.activation), **common)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        return getattr(L, kind)(layer.pool_size, layer.strides, layer.padding, **common)
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return getattr(L, kind)(keepdims=layer.keepdims, **common)
    if kind in ("Add", "Flatten"):
        return getattr(L, kind)(**common)
    if kind == "Reshape":
        return L.Reshape(layer.target_shape, **common)
    if kind == "ZeroPadding2D":
        return L.ZeroPadding2D(layer.padding, **common)
    if kind == "Rescaling":
        return L.Rescaling(layer.scale, layer.offset, **common)
    if kind == "Dropout":
        return L.Dropout(layer.rate, **common)
    raise KerasEdgeError(f"layer {layer.name!r} ({kind}) has no tf_keras twin, so quantisation-aware training "
                         f"cannot use it; QAT supports {TWINNED}")
