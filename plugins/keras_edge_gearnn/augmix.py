"""AugMix (Hendrycks et al. 2020) on batched tensors: every sample gets its own random chains.

Only operations that do not overlap the test corruptions are used (the reference
``augmentations.augmentations`` list): autocontrast, equalize, posterize, rotate,
solarize, shear (x, y) and translate (x, y). Levels follow the reference code:
a level is drawn uniformly in [0.1, severity] per sample and op, out of a maximum of 10.
Every random draw is stateless, from one ``seed`` per batch, so a resumed run makes the
same views.
Geometric ops of one chain step are one per-sample projective transform; pixel ops
work on the image quantised to 256 levels, as PIL does.
"""

from __future__ import annotations

import math

import tensorflow as tf

OPS = ("autocontrast", "equalize", "posterize", "solarize", "rotate",
       "shear_x", "shear_y", "translate_x", "translate_y")
"""The operations a chain step picks from, uniformly."""

_MAX_LEVEL = 10.0


def augment_and_mix(images, seed, width=3, depth=3, random_depth=True, severity=3, alpha=1.0, ops=OPS,
                    views=1):
    """Return ``views`` AugMix versions of a batch (float32 NHWC in [0, 1]), stacked on a new first axis.

    Each sample of each view mixes ``width`` chains of ``depth`` ops (a random depth in
    1..depth per chain and sample when ``random_depth``) with Dirichlet(``alpha``)
    weights, then blends the mix with the original using a Beta(``alpha``, ``alpha``)
    weight. All chains of all views run as one batch, so the graph has ``depth`` steps.
    ``seed`` (a ``[2]`` integer tensor) determines every draw.
    """
    seeds = iter(tf.unstack(tf.random.experimental.stateless_split(seed, 3 * depth + 4)))
    shape = tf.shape(images)
    batch, chains = shape[0], views * width
    x = tf.tile(images, [chains, 1, 1, 1])  # chain-major: [views * width * batch, H, W, C]
    n = chains * batch
    if random_depth:
        chain_depth = tf.random.stateless_uniform([n], next(seeds), 1, depth + 1, dtype=tf.int32)
    else:
        chain_depth = tf.fill([n], depth)
    for step in range(depth):
        op = tf.random.stateless_uniform([n], next(seeds), 0, len(ops), dtype=tf.int32)
        level = tf.random.stateless_uniform([n], next(seeds), 0.1, float(severity))
        x = apply_ops(x, tf.where(step < chain_depth, op, -1), level, next(seeds), ops)
    x = tf.reshape(x, tf.concat([[views, width, batch], shape[1:]], axis=0))
    weights = tf.reshape(_dirichlet(views * batch, width, alpha, next(seeds)), [views, batch, width])
    weights = tf.reshape(tf.transpose(weights, [0, 2, 1]), [views, width, batch, 1, 1, 1])
    mixed = tf.reduce_sum(weights * x, axis=1)
    m = tf.reshape(_beta(views * batch, alpha, next(seeds), next(seeds)), [views, batch, 1, 1, 1])
    return (1.0 - m) * images[None] + m * mixed


def apply_ops(images, op, level, seed, ops=OPS):
    """Apply ``ops[op[i]]`` at ``level[i]`` to sample ``i`` of ``images`` (``op[i] < 0``: leave it);
    ``seed`` draws the direction of the geometric ops.

    Samples are partitioned by operation, so each is computed only by its own op (about
    one op's cost per sample instead of every op's)."""
    pixel_ops = {"autocontrast": lambda x, _: autocontrast(x), "equalize": lambda x, _: equalize(x),
                 "posterize": posterize, "solarize": solarize}
    pixel = [name for name in ops if name in pixel_ops]
    group_of_op = tf.constant([1 + pixel.index(name) if name in pixel_ops else 0 for name in ops], tf.int32)
    groups = 2 + len(pixel)  # 0: geometric, 1..: pixel ops, last: unchanged
    group = tf.where(op < 0, groups - 1, tf.gather(group_of_op, tf.maximum(op, 0)))
    index = tf.dynamic_partition(tf.range(tf.shape(images)[0]), group, groups)
    x = tf.dynamic_partition(images, group, groups)
    lv = tf.dynamic_partition(level, group, groups)
    outs = [_geometric(x[0], tf.dynamic_partition(op, group, groups)[0], lv[0], seed, ops)]
    outs += [pixel_ops[name](x[1 + k], lv[1 + k]) for k, name in enumerate(pixel)]
    outs.append(x[-1])
    return tf.dynamic_stitch(index, outs)


def autocontrast(images):
    """Stretch each sample's channels to the full range (PIL ``ImageOps.autocontrast``)."""
    q = tf.round(tf.cast(images, tf.float64) * 255.0)
    lo = tf.reduce_min(q, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(q, axis=[1, 2], keepdims=True)
    scale = 255.0 / tf.maximum(hi - lo, 1.0)
    stretched = tf.clip_by_value(tf.floor(q * scale - lo * scale), 0.0, 255.0)  # PIL's lookup table, in float64
    return tf.cast(tf.where(hi > lo, stretched, q) / 255.0, tf.float32)


def equalize(images):
    """Histogram-equalise each sample's channels (PIL ``ImageOps.equalize``)."""
    shape = tf.shape(images)
    b, c = shape[0], shape[3]
    q = tf.cast(tf.round(images * 255.0), tf.int32)
    group = tf.reshape(tf.range(b * c), [b, 1, 1, c])
    hist = tf.math.bincount(tf.reshape(group * 256 + q, [-1]), minlength=b * c * 256, maxlength=b * c * 256)
    hist = tf.reshape(hist, [b * c, 256])
    top = tf.reduce_max(tf.reshape(tf.transpose(q, [0, 3, 1, 2]), [b * c, -1]), axis=1)
    last = tf.gather(hist, top, batch_dims=1)
    step = (tf.reduce_sum(hist, axis=1) - last) // 255
    safe_step = tf.maximum(step, 1)[:, None]
    lut = (safe_step // 2 + tf.cumsum(hist, axis=1, exclusive=True)) // safe_step
    lut = tf.where(step[:, None] > 0, tf.minimum(lut, 255), tf.range(256)[None, :])
    flat_q = tf.reshape(tf.transpose(q, [0, 3, 1, 2]), [b * c, -1])
    out = tf.gather(lut, flat_q, batch_dims=1)
    out = tf.transpose(tf.reshape(out, [b, c, shape[1], shape[2]]), [0, 2, 3, 1])
    return tf.cast(out, tf.float32) / 255.0


def posterize(images, level):
    """Keep ``4 - int(level * 4 / 10)`` bits per sample (reference ``posterize``)."""
    bits = 4 - tf.cast(level * 4.0 / _MAX_LEVEL, tf.int32)
    shift = tf.reshape(8 - bits, [-1, 1, 1, 1])
    q = tf.cast(tf.round(images * 255.0), tf.int32)
    q = tf.bitwise.left_shift(tf.bitwise.right_shift(q, shift), shift)
    return tf.cast(q, tf.float32) / 255.0


def solarize(images, level):
    """Invert pixels at or above ``256 - int(level * 256 / 10)`` (reference ``solarize``)."""
    threshold = 256.0 - tf.floor(level * 256.0 / _MAX_LEVEL)
    q = tf.round(images * 255.0)
    q = tf.where(q >= tf.reshape(threshold, [-1, 1, 1, 1]), 255.0 - q, q)
    return q / 255.0


def _geometric(images, op, level, seed, ops):
    """One per-sample affine warp: the sample's geometric op, or the identity."""
    batch = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    sign = tf.where(tf.random.stateless_uniform([batch], seed) < 0.5, -1.0, 1.0)
    angle = sign * tf.floor(level * 30.0 / _MAX_LEVEL) * (math.pi / 180.0)
    shear = sign * level * 0.3 / _MAX_LEVEL
    shift = sign * tf.floor(level * (size / 3.0) / _MAX_LEVEL)
    is_op = lambda name: tf.equal(op, ops.index(name)) if name in ops else tf.zeros_like(op, tf.bool)  # noqa: E731
    zero = tf.zeros([batch])
    angle = tf.where(is_op("rotate"), angle, zero)
    # output (x, y) -> input (a0 x + a1 y + a2, b0 x + b1 y + b2); rotation about the centre
    centre = (size - 1.0) / 2.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = centre - cos * centre + sin * centre
    b2 = centre - sin * centre - cos * centre
    a1 += tf.where(is_op("shear_x"), shear, zero)
    b0 += tf.where(is_op("shear_y"), shear, zero)
    a2 += tf.where(is_op("translate_x"), shift, zero)
    b2 += tf.where(is_op("translate_y"), shift, zero)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")


def _dirichlet(batch, width, alpha, seed):
    g = tf.random.stateless_gamma([batch, width], seed, alpha)
    return g / tf.reduce_sum(g, axis=1, keepdims=True)


def _beta(batch, alpha, seed_a, seed_b):
    a = tf.random.stateless_gamma([batch], seed_a, alpha)
    b = tf.random.stateless_gamma([batch], seed_b, alpha)
    return a / (a + b)
