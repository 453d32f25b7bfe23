"""Layer operations whose gradients convert to TFLite builtin ops.

TensorFlow's own gradients of convolutions, activations and batch normalisation
(Conv2DBackpropFilter, ReluGrad, FusedBatchNormGradV3, ...) exist in TFLite only as
Flex ops. Each function here computes the forward pass with ordinary ops and
declares its gradient with ``tf.custom_gradient`` in builtin ops: a convolution's
weight gradient is another convolution, its input gradient a convolution of the
zero-dilated output gradient with the flipped kernel, activation gradients are
selects.

Weights are passed as ``Param`` objects. ``Param.trained`` is the tensor the tape
differentiates (``None`` for a frozen weight: no weight gradient is built at all);
``Param.channels`` lists the output channels that train (``None`` = all), and the
weight gradient is computed for those channels only, so its size, and the optimizer
state, scale with the selection. All shapes are static (fixed batch size).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class Param:
    """A weight as an op sees it.

    ``value``: the full weight (forward pass). ``trained``: the tensor gradients are
    taken with respect to (the selected channels; ``None`` when frozen).
    ``channels``: indices of the selected output channels (last axis of the
    weight's channel view) or ``None`` for all.
    """

    value: Any
    trained: Any = None
    channels: Any = None


def _frozen(p):
    return p is None or p.trained is None


def _select(t, channels, axis=-1):
    return t if channels is None else tf.gather(t, channels, axis=axis)


def _with_grad(x, params, forward, backward):
    """Run ``forward(x)`` with ``backward(dy) -> (dx, [grad per trained param])``."""
    trained = [p for p in params if not _frozen(p)]

    @tf.custom_gradient
    def op(x, *unused_trained):
        def grad(dy):
            dx, dparams = backward(dy)
            return (dx, *dparams)

        return forward(x), grad

    return op(x, *[p.trained for p in trained])


# ------------------------------------------------------------------ geometry


def same_or_valid(size, kernel, stride, dilation, padding):
    """(pad_before, pad_after, out_size) of one spatial axis, as TensorFlow pads."""
    span = (kernel - 1) * dilation + 1
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
        return total // 2, total - total // 2, out
    return 0, 0, (size - span) // stride + 1


def _pad_hw(x, ph, pw, value=0.0):
    if not any(ph + pw):
        return x
    return tf.pad(x, [[0, 0], list(ph), list(pw), [0, 0]], constant_values=value)


def _dilate_zeros(t, strides):
    """Insert ``stride - 1`` zeros between rows and between columns of an NHWC tensor."""
    sh, sw = strides
    b, h, w, c = t.shape
    if sh > 1:
        t = tf.reshape(tf.pad(tf.reshape(t, [b, h, 1, w * c]), [[0, 0], [0, 0], [0, sh - 1], [0, 0]]), [b, h * sh, w, c])
        t = t[:, : (h - 1) * sh + 1]
    if sw > 1:
        hh = t.shape[1]
        t = tf.reshape(tf.pad(tf.reshape(t, [b * hh, w, 1, c]), [[0, 0], [0, 0], [0, sw - 1], [0, 0]]), [b, hh, w * sw, c])
        t = t[:, :, : (w - 1) * sw + 1]
    return t


def _scatter_pad(dy, g):
    """Zero-dilate ``dy`` and pad it so that a VALID stride-1 correlation with the
    flipped kernel (same dilation) yields the input gradient of ``g``. Both paddings
    are >= 0 for TensorFlow's "same" and "valid" geometry."""
    t = _dilate_zeros(dy, g.strides)
    lead = [(k - 1) * d - b for k, d, (b, _) in zip(g.kernel, g.dilation, g.pads)]
    tail = [n + b - t.shape[1 + a] for a, (n, (b, _)) in enumerate(zip(g.in_hw, g.pads))]
    return _pad_hw(t, (lead[0], tail[0]), (lead[1], tail[1]))


class Geometry:
    """Kernel size, stride, dilation and padding of a 2-D window op on an input."""

    def __init__(self, in_shape, kernel, strides, dilation, padding):
        self.in_hw = tuple(in_shape[1:3])
        self.kernel, self.strides, self.dilation = tuple(kernel), tuple(strides), tuple(dilation)
        self.padding = padding.lower()
        dims = [
            same_or_valid(n, k, s, d, self.padding)
            for n, k, s, d in zip(self.in_hw, self.kernel, self.strides, self.dilation)
        ]
        self.pads = [(b, a) for b, a, _ in dims]
        self.out_hw = tuple(o for _, _, o in dims)

    def pad(self, x, value=0.0):
        return _pad_hw(x, self.pads[0], self.pads[1], value)


# ------------------------------------------------------------------ convolutions


def _conv(x, w, strides, dilations):
    return tf.nn.conv2d(x, w, strides=[1, *strides, 1], padding="VALID", dilations=list(dilations))


def _depthwise(x, w, strides, dilations):
    return tf.nn.depthwise_conv2d(x, w, strides=[1, *strides, 1], padding="VALID", dilations=list(dilations))


def conv2d(x, kernel: Param, bias: Param | None, g: Geometry):
    """Conv2D (NHWC, groups 1). Weight gradient: the padded input, batch moved to
    channels, correlated with the output gradient (stride = dilation and dilation =
    stride swapped)."""
    kh, kw = g.kernel

    def forward(x):
        y = _conv(g.pad(x), kernel.value, g.strides, g.dilation)
        return y if bias is None else y + bias.value

    def backward(dy):
        w_flip = tf.transpose(tf.reverse(kernel.value, [0, 1]), [0, 1, 3, 2])
        dx = _conv(_scatter_pad(dy, g), w_flip, (1, 1), g.dilation)
        grads = []
        if not _frozen(kernel):
            dys = _select(dy, kernel.channels)
            xt = tf.transpose(g.pad(x), [3, 1, 2, 0])
            f = tf.transpose(dys, [1, 2, 0, 3])
            dw = _conv(xt, f, g.dilation, g.strides)[:, :kh, :kw, :]
            grads.append(tf.transpose(dw, [1, 2, 0, 3]))
        if not _frozen(bias):
            grads.append(tf.reduce_sum(_select(dy, bias.channels), [0, 1, 2]))
        return dx, grads

    return _with_grad(x, [kernel, bias], forward, backward)


def depthwise_conv2d(x, kernel: Param, bias: Param | None, g: Geometry):
    """DepthwiseConv2D. ``kernel.value`` is [kh, kw, C, M]; its channel view (the one
    ``kernel.trained``/``channels`` refer to) is [kh, kw, C*M]. Weight gradient: batch
    and channels folded into one depthwise correlation with the output gradient as
    filter, then summed over the batch."""
    kh, kw, c, m = kernel.value.shape

    def forward(x):
        y = _depthwise(g.pad(x), kernel.value, g.strides, g.dilation)
        return y if bias is None else y + bias.value

    def backward(dy):
        b = dy.shape[0]
        dyz = _scatter_pad(dy, g)
        w_flip = tf.reshape(tf.reverse(kernel.value, [0, 1]), [kh, kw, c * m, 1])
        if m == 1:
            dx = _depthwise(dyz, w_flip, (1, 1), g.dilation)
        else:
            out = _depthwise(tf.reshape(dyz, [*dyz.shape[:3], c * m]), w_flip, (1, 1), g.dilation)
            dx = tf.reduce_sum(tf.reshape(out, [*out.shape[:3], c, m]), -1)
        grads = []
        if not _frozen(kernel):
            outs = np.arange(c * m) if kernel.channels is None else np.asarray(kernel.channels)
            xs = g.pad(x) if m == 1 and kernel.channels is None else tf.gather(g.pad(x), outs // m, axis=-1)
            dys = _select(dy, kernel.channels)
            n = len(outs)
            hp, wp = xs.shape[1:3]
            ho, wo = dys.shape[1:3]
            xx = tf.reshape(tf.transpose(xs, [1, 2, 0, 3]), [1, hp, wp, b * n])
            f = tf.reshape(tf.transpose(dys, [1, 2, 0, 3]), [ho, wo, b * n, 1])
            dw = _depthwise(xx, f, g.dilation, g.strides)[:, :kh, :kw, :]
            grads.append(tf.reduce_sum(tf.reshape(dw, [kh, kw, b, n]), 2))
        if not _frozen(bias):
            grads.append(tf.reduce_sum(_select(dy, bias.channels), [0, 1, 2]))
        return dx, grads

    return _with_grad(x, [kernel, bias], forward, backward)


def dense(x, kernel: Param, bias: Param | None):
    """Dense on a [batch, features] input."""

    def forward(x):
        y = tf.matmul(x, kernel.value)
        return y if bias is None else y + bias.value

    def backward(dy):
        dx = tf.matmul(dy, kernel.value, transpose_b=True)
        grads = []
        if not _frozen(kernel):
            grads.append(tf.matmul(x, _select(dy, kernel.channels), transpose_a=True))
        if not _frozen(bias):
            grads.append(tf.reduce_sum(_select(dy, bias.channels), 0))
        return dx, grads

    return _with_grad(x, [kernel, bias], forward, backward)


# ------------------------------------------------------------------ normalisation


def batch_norm_train(x, gamma: Param | None, beta: Param | None, epsilon, example_weight=None):
    """Batch normalisation with batch statistics over all axes but the last.

    ``example_weight`` (float [batch], >= 0, or ``None`` for all ones) weights each
    example in the statistics, so that padding (weight 0) in a short batch changes
    neither the statistics nor the gradients of the real examples. Returns
    ``(y, mean, variance)``; the statistics carry no gradient (the analytic input
    gradient accounts for them) and feed the moving averages.
    """
    axes = list(range(len(x.shape) - 1))
    if example_weight is None:
        mean, variance = tf.nn.moments(tf.stop_gradient(x), axes)
        share = 1.0 / np.prod(x.shape[:-1])  # each position's weight in the statistics
    else:
        positions = float(np.prod(x.shape[1:-1]))
        total = tf.maximum(tf.reduce_sum(example_weight), 1e-12) * positions
        share = tf.reshape(example_weight, [-1] + [1] * (len(x.shape) - 1)) / total
        xs = tf.stop_gradient(x)
        mean = tf.reduce_sum(xs * share, axes)
        variance = tf.reduce_sum(tf.square(xs - mean) * share, axes)
    rstd = tf.math.rsqrt(variance + epsilon)

    def forward(x):
        y = (x - mean) * rstd
        if gamma is not None:
            y = y * gamma.value
        return y if beta is None else y + beta.value

    def backward(dy):
        xhat = (x - mean) * rstd
        dxhat = dy if gamma is None else dy * gamma.value
        dx = rstd * (dxhat - share * (tf.reduce_sum(dxhat, axes) + xhat * tf.reduce_sum(dxhat * xhat, axes)))
        grads = []
        if not _frozen(gamma):
            grads.append(tf.reduce_sum(_select(dy, gamma.channels) * _select(xhat, gamma.channels), axes))
        if not _frozen(beta):
            grads.append(tf.reduce_sum(_select(dy, beta.channels), axes))
        return dx, grads

    return _with_grad(x, [gamma, beta], forward, backward), mean, variance


def affine(x, scale, shift):
    """``x * scale + shift`` with constant per-channel ``scale`` and ``shift`` (batch norm
    with moving statistics and frozen parameters)."""
    return _elementwise(x, lambda x: x * scale + shift, lambda x: scale)


# ------------------------------------------------------------------ activations


def _elementwise(x, forward, slope):
    @tf.custom_gradient
    def op(x):
        return forward(x), lambda dy: dy * slope(x)

    return op(x)


def relu(x):
    return _elementwise(x, tf.nn.relu, lambda x: tf.cast(x > 0, x.dtype))


def relu6(x):
    return _elementwise(x, tf.nn.relu6, lambda x: tf.cast(tf.logical_and(x > 0, x < 6), x.dtype))


def hard_swish(x):
    """x * relu6(x + 3) / 6, as Keras' hard_silu."""
    return _elementwise(
        x,
        lambda x: x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0),
        lambda x: tf.nn.relu6(x + 3.0) * (1.0 / 6.0)
        + x * tf.cast(tf.logical_and(x > -3.0, x < 3.0), x.dtype) * (1.0 / 6.0),
    )


def dropout(x, rate):
    """Inverted dropout with a fresh mask per step (RANDOM_UNIFORM builtin)."""
    keep = tf.cast(tf.random.uniform(x.shape) >= rate, x.dtype) * (1.0 / (1.0 - rate))
    return _elementwise(x, lambda x: x * keep, lambda x: keep)


# ------------------------------------------------------------------ pooling


def _window_slices(xp, g):
    """The strided view of the padded input seen by each window offset, in row-major order."""
    (kh, kw), (sh, sw), (ho, wo) = g.kernel, g.strides, g.out_hw
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw, :]


def _place(t, i, j, g, padded_hw):
    """Put a window offset's contribution back at its input positions (zero elsewhere)."""
    t = _dilate_zeros(t, g.strides)
    h, w = t.shape[1:3]
    return tf.pad(t, [[0, 0], [i, padded_hw[0] - i - h], [j, padded_hw[1] - j - w], [0, 0]])


def _unpad(t, g):
    (pt, _), (pl, _) = g.pads
    h, w = g.in_hw
    return t[:, pt : pt + h, pl : pl + w, :]


def max_pool(x, g: Geometry):
    """Max pooling; the gradient goes to the first maximum of each window (as TensorFlow)."""

    def forward(x):
        return tf.nn.max_pool2d(g.pad(x, -np.inf), g.kernel, g.strides, "VALID")

    def backward(dy):
        xp = g.pad(x, -np.inf)
        y = forward(x)
        taken = tf.zeros_like(y, tf.bool)
        dx = None
        for i, j, window in _window_slices(xp, g):
            hit = tf.logical_and(tf.equal(window, y), tf.logical_not(taken))
            taken = tf.logical_or(taken, hit)
            part = _place(dy * tf.cast(hit, dy.dtype), i, j, g, xp.shape[1:3])
            dx = part if dx is None else dx + part
        return _unpad(dx, g), []

    return _with_grad(x, [], forward, backward)


def avg_pool(x, g: Geometry):
    """Average pooling; with "same" padding each window averages its valid inputs only."""
    ones = np.pad(np.ones(g.in_hw, np.float32), g.pads)
    counts = sum(
        ones[i : i + (g.out_hw[0] - 1) * g.strides[0] + 1 : g.strides[0], j : j + (g.out_hw[1] - 1) * g.strides[1] + 1 : g.strides[1]]
        for i in range(g.kernel[0])
        for j in range(g.kernel[1])
    )
    inv = tf.constant((1.0 / counts)[None, :, :, None], tf.float32)

    def forward(x):
        return tf.nn.avg_pool2d(x, g.kernel, g.strides, g.padding.upper())

    def backward(dy):
        share = dy * inv
        padded_hw = tuple(n + b + a for n, (b, a) in zip(g.in_hw, g.pads))
        dx = sum(_place(share, i, j, g, padded_hw) for i in range(g.kernel[0]) for j in range(g.kernel[1]))
        return _unpad(dx, g), []

    return _with_grad(x, [], forward, backward)


def global_avg_pool(x, keepdims=False):
    h, w = x.shape[1:3]
    spread = tf.constant(np.full((1, h, w, 1), 1.0 / (h * w), np.float32))

    def forward(x):
        return tf.reduce_mean(x, [1, 2], keepdims=keepdims)

    def backward(dy):
        dy = dy if keepdims else dy[:, None, None, :]
        return dy * spread, []

    return _with_grad(x, [], forward, backward)


def global_max_pool(x, keepdims=False):
    """Global max pooling; ties share the gradient equally (as TensorFlow's Max)."""

    def forward(x):
        return tf.reduce_max(x, [1, 2], keepdims=True)

    def backward(dy):
        hit = tf.cast(tf.equal(x, forward(x)), x.dtype)
        return hit / tf.reduce_sum(hit, [1, 2], keepdims=True) * dy, []

    y = _with_grad(x, [], forward, backward)
    return y if keepdims else tf.reshape(y, [-1, y.shape[-1]])


# ------------------------------------------------------------------ loss


def softmax_cross_entropy(logits, labels, example_weight=None):
    """Softmax cross-entropy of integer ``labels``, averaged over the examples with
    weights ``example_weight`` (float [batch], >= 0; ``None``: the plain mean)."""
    onehot = tf.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    if example_weight is None:
        share = tf.constant(1.0 / logits.shape[0], logits.dtype)
    else:
        share = (example_weight / tf.maximum(tf.reduce_sum(example_weight), 1e-12))[:, None]

    @tf.custom_gradient
    def op(logits):
        loss = -tf.reduce_sum(share * onehot * tf.nn.log_softmax(logits))
        return loss, lambda dl: (tf.nn.softmax(logits) - onehot) * (share * dl)

    return op(logits)
