"""Keras's BatchNormalization with TensorFlow's fused batch-norm op in training.

Keras 3 normalises in training with ``moments`` + ``batch_normalization`` and their
element-wise gradients; one ``FusedBatchNormV3`` op (and its fused gradient) does the
same work in fewer passes over the activations (tools/bench_supernet.py measures it on
the elastic supernet's BatchNorm). Inference, masks, renorm, synchronised statistics and
other layouts keep Keras's own path. The class name stays ``BatchNormalization`` so
code that checks ``type(layer).__name__`` treats both alike; a saved model needs
``keras_edge.models`` imported to load it.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_edge")
class BatchNormalization(keras.layers.BatchNormalization):
    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta), epsilon=self.epsilon,
            is_training=True)
        n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), inputs.dtype)
        variance = variance * (n - 1.0) / n  # the op's variance is Bessel-corrected; Keras keeps the biased one
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return y

    def _fusable(self, inputs, mask) -> bool:
        return (mask is None and not self.renorm and not self.synchronized and self.center and self.scale
                and len(inputs.shape) == 4 and self.axis in (-1, 3) and inputs.dtype == tf.float32)
