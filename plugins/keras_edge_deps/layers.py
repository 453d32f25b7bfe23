"""Elastic layers: shared weights sliced with tensor-valued sizes (never zero masks).

Sizes may be Python ints (the full model, extraction) or int32 tensors (any subnet
inside one compiled step); slicing then runs smaller convolutions for smaller subnets.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_edge.models.batch_norm import fused_allowed, fused_batch_norm_training


@keras.saving.register_keras_serializable(package="keras_edge_deps")
class ElasticBatchNorm(keras.layers.Layer):
    """BatchNorm over the first ``c`` channels of the input (``c`` read from the input).

    In training, moving statistics move only when ``update_stats`` is true (the loop's
    full-model passes); subnets are recalibrated before they are evaluated. With
    ``calibrate`` (a scalar weight ``w``), moving statistics become
    ``(1 - w) * old + w * batch`` instead: a running average over calibration batches.
    ``synchronized`` (set by the loop under a multi-replica strategy) takes the batch
    statistics over all replicas. ``fused``: training passes use one fused batch-norm op
    (forward and gradient) instead of ``tf.nn.moments`` + ``batch_normalization`` (0.82x the
    step time, tools/bench_supernet.py), where ``keras_edge.models.batch_norm`` allows it.
    """

    def __init__(self, momentum=0.9, epsilon=1e-5, fused=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.epsilon, self.fused = momentum, epsilon, fused
        self.synchronized = False

    def build(self, input_shape):
        c = (input_shape[-1],)
        self.gamma = self.add_weight(shape=c, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=c, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=c, initializer="zeros", name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape=c, initializer="ones", name="moving_variance",
                                               trainable=False)

    def call(self, x, training=False, update_stats=True, calibrate=None):
        whole = x.shape[-1] == self.gamma.shape[0]  # all channels: no slicing ops needed
        c = tf.shape(x)[-1]
        part = (lambda v: v.value) if whole else (lambda v: v.value[:c])  # noqa: E731
        gamma, beta = part(self.gamma), part(self.beta)
        if not training and calibrate is None:
            mean, variance = part(self.moving_mean), part(self.moving_variance)
        elif self.fused and calibrate is None and not self._synchronizing() and fused_allowed():
            y, mean, variance = fused_batch_norm_training(x, gamma, beta, self.epsilon)
            if update_stats:
                self._blend(whole, c, mean, variance, 1.0 - self.momentum)
            return y
        else:
            mean, variance = self._moments(x)
            if calibrate is not None:
                self._blend(whole, c, mean, variance, calibrate)
            elif update_stats:
                self._blend(whole, c, mean, variance, 1.0 - self.momentum)
        return tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.epsilon)

    def _synchronizing(self):
        replica = tf.distribute.get_replica_context()
        return self.synchronized and replica is not None and replica.num_replicas_in_sync > 1

    def _moments(self, x):
        if not self._synchronizing():
            return tf.nn.moments(x, axes=[0, 1, 2])
        replica = tf.distribute.get_replica_context()
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), x.dtype)
        total, squares, count = replica.all_reduce(
            tf.distribute.ReduceOp.SUM, [tf.reduce_sum(x, [0, 1, 2]), tf.reduce_sum(x * x, [0, 1, 2]), count])
        mean = total / count
        return mean, tf.maximum(squares / count - mean * mean, 0.0)

    def _blend(self, whole, c, mean, variance, weight):
        for var, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
            old, value = var.value, tf.stop_gradient(value)
            if whole:
                var.assign(old * (1.0 - weight) + value * weight)
            else:
                var.assign(tf.concat([old[:c] * (1.0 - weight) + value * weight, old[c:]], 0))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon, "fused": self.fused}


def center_crop(kernel, size):
    """The ``size x size`` centre of a ``[k, k, ...]`` kernel (``size`` int or tensor)."""
    start = (tf.shape(kernel)[0] - size) // 2
    return kernel[start:start + size, start:start + size]


@keras.saving.register_keras_serializable(package="keras_edge_deps")
class ElasticMBConv(keras.layers.Layer):
    """MobileNetV3 inverted-residual block with elastic kernel size and expand ratio.

    1x1 expand (``in * expand`` channels) -> BN -> act -> depthwise ``k x k`` -> BN -> act
    -> 1x1 project -> BN (+ input when the shapes allow). A smaller kernel is the centre
    of the next larger one passed through a learnt ``k^2 x k^2`` transformation matrix
    (OFA's kernel transformation, identity at start).
    """

    def __init__(self, in_channels, out_channels, stride, kernels, max_expand, activation,
                 bn_momentum=0.9, bn_epsilon=1e-5, fused_batch_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.kernels, self.max_expand, self.activation = tuple(kernels), max_expand, activation
        self.bn_momentum, self.bn_epsilon, self.fused_batch_norm = bn_momentum, bn_epsilon, fused_batch_norm
        self.residual = stride == 1 and in_channels == out_channels
        self.act = keras.activations.get(activation)
        mid = in_channels * max_expand
        bn = dict(momentum=bn_momentum, epsilon=bn_epsilon, fused=fused_batch_norm)
        self.expand_bn = ElasticBatchNorm(**bn, name="expand_bn")
        self.depthwise_bn = ElasticBatchNorm(**bn, name="depthwise_bn")
        self.project_bn = ElasticBatchNorm(**bn, name="project_bn")
        self.expand_bn.build((None, mid))
        self.depthwise_bn.build((None, mid))
        self.project_bn.build((None, out_channels))

    def build(self, input_shape=None):
        mid, kmax = self.in_channels * self.max_expand, self.kernels[-1]
        init = keras.initializers.HeNormal()
        self.expand_kernel = self.add_weight(shape=(1, 1, self.in_channels, mid), initializer=init,
                                             name="expand_kernel")
        self.depthwise_kernel = self.add_weight(shape=(kmax, kmax, mid, 1), initializer=init,
                                                name="depthwise_kernel")
        self.project_kernel = self.add_weight(shape=(1, 1, mid, self.out_channels), initializer=init,
                                              name="project_kernel")
        self.transforms = [self.add_weight(shape=(k * k, k * k), initializer="identity",
                                           name=f"transform_{k}x{k}") for k in self.kernels[:-1]]

    def kernel_for(self, kernel):
        """Depthwise kernel of size ``kernel`` (Python int or int32 scalar tensor).

        For a tensor size, every transformed kernel is computed (they are tiny), padded
        back to the largest size, the wanted one selected with ``tf.where`` and cropped:
        no branches in the graph, so the step traces and compiles quickly.
        """
        if isinstance(kernel, int):
            return self._transformed(self.kernels.index(kernel))
        kmax = self.kernels[-1]
        chosen = self.depthwise_kernel.value
        for i, k in enumerate(self.kernels[:-1]):
            pad = (kmax - k) // 2
            padded = tf.pad(self._transformed(i), [[pad, pad], [pad, pad], [0, 0], [0, 0]])
            chosen = tf.where(tf.equal(kernel, k), padded, chosen)
        return center_crop(chosen, kernel)

    def _transformed(self, index):
        weight = self.depthwise_kernel.value
        for i in range(len(self.kernels) - 2, index - 1, -1):
            k = self.kernels[i]
            crop = center_crop(weight, k)  # [k, k, mid, 1]
            flat = tf.transpose(tf.reshape(crop, (k * k, -1)))  # [mid, k*k]
            weight = tf.reshape(tf.transpose(flat @ self.transforms[i].value), (k, k, -1, 1))
        return weight

    def sliced_weights(self, kernel, expand):
        """The expand, depthwise and project kernels of a subnet block (sizes int or tensor).

        Computed outside the ``tf.cond`` that may skip the block, so that the branch (and
        the intermediates its gradient keeps) holds only the block's activations.
        """
        mid = self.in_channels * expand
        return (self.expand_kernel.value[:, :, :, :mid], self.kernel_for(kernel)[:, :, :mid, :],
                self.project_kernel.value[:, :, :mid, :])

    def call(self, x, kernel, expand, training=False, update_stats=True, calibrate=None):
        return self.apply(x, self.sliced_weights(kernel, expand), training, update_stats, calibrate)

    def apply(self, x, weights, training=False, update_stats=True, calibrate=None):
        """The block on ``x`` with kernels from ``sliced_weights``."""
        expand_kernel, depthwise, project_kernel = weights
        bn = dict(training=training, update_stats=update_stats, calibrate=calibrate)
        y = tf.nn.conv2d(x, expand_kernel, 1, "SAME")
        y = self.act(self.expand_bn(y, **bn))
        y = tf.nn.depthwise_conv2d(y, depthwise, (1, self.stride, self.stride, 1), "SAME")
        y = self.act(self.depthwise_bn(y, **bn))
        y = tf.nn.conv2d(y, project_kernel, 1, "SAME")
        y = self.project_bn(y, **bn)
        return x + y if self.residual else y

    def get_config(self):
        return {**super().get_config(), "in_channels": self.in_channels, "out_channels": self.out_channels,
                "stride": self.stride, "kernels": list(self.kernels), "max_expand": self.max_expand,
                "activation": self.activation, "bn_momentum": self.bn_momentum, "bn_epsilon": self.bn_epsilon,
                "fused_batch_norm": self.fused_batch_norm}
