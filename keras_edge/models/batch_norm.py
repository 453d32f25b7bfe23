"""BatchNorm in training as TensorFlow's one fused op (forward and gradient).

Keras 3 normalises in training with ``moments`` + ``batch_normalization`` and their
element-wise gradients; ``FusedBatchNormV3`` does the same work in fewer passes over the
activations: MobileNetV2 (alpha 1) trains 1.63x faster, the elastic supernet's largest
config 1.22x (tools/bench_supernet.py). Under op determinism (``train.deterministic``)
the fused path is not taken: there TensorFlow's oneDNN kernel trains differently from
Keras's ops and from its own non-deterministic and Eigen variants (a VGG's block-1 weights
5e-3 apart after the second step; tools/fused_bn_determinism.py).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_edge import _compat


def fused_allowed() -> bool:
    """Whether training may use the fused op: not under op determinism."""
    return not _compat.op_determinism_enabled()


def fused_batch_norm_training(x, gamma, beta, epsilon):
    """``(y, mean, variance)`` of a training-mode BatchNorm over NHWC ``x``. The op returns
    the Bessel-corrected batch variance; it is scaled back to the biased one Keras keeps."""
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon, is_training=True)
    n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), x.dtype)
    return y, mean, variance * (n - 1.0) / n


@keras.saving.register_keras_serializable(package="keras_edge")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras's BatchNormalization, fused in training where it can be (float32 NHWC, no mask,
    renorm or synchronised statistics, not under op determinism); otherwise Keras's own path.
    The class keeps Keras's name, so code that matches ``type(layer).__name__`` treats both
    alike; loading a saved model needs ``keras_edge.models`` imported (keras-edge does)."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        y, mean, variance = fused_batch_norm_training(
            inputs, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta), self.epsilon)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return y

    def _fusable(self, inputs, mask) -> bool:
        return (mask is None and not self.renorm and not self.synchronized and self.center and self.scale
                and len(inputs.shape) == 4 and self.axis in (-1, 3) and inputs.dtype == tf.float32
                and fused_allowed())
