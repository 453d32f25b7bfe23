"""The 15 common corruptions (Hendrycks & Dietterich 2019) for small images, in NumPy/SciPy/TF.

Every function takes float images ``x`` (N, H, W, C) in [0, 1], a severity 1..5 and a
NumPy ``Generator``, and returns corrupted float images in [0, 1]. Parameters are the
CIFAR-10-C tables of ``hendrycks/robustness`` (``make_cifar_c.py``); parameters given
in pixels are kept for 28x28, those relative to the image size use the actual size.
ImageMagick's motion blur is re-implemented (a one-sided Gaussian line kernel); frost
uses textures generated with the measured statistics of the reference's five photographs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from scipy import ndimage


def gaussian_noise(x, severity, rng):
    c = [0.04, 0.06, 0.08, 0.09, 0.10][severity - 1]
    return np.clip(x + rng.normal(scale=c, size=x.shape), 0, 1)


def shot_noise(x, severity, rng):
    c = [500, 250, 100, 75, 50][severity - 1]
    return np.clip(rng.poisson(x * c) / c, 0, 1)


def impulse_noise(x, severity, rng):
    c = [0.01, 0.02, 0.03, 0.05, 0.07][severity - 1]
    hit = rng.random(x.shape) < c
    salt = rng.random(x.shape) < 0.5
    return np.where(hit, salt.astype(x.dtype), x)


def defocus_blur(x, severity, rng):
    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    grid = np.arange(-8, 9)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disk = ndimage.correlate(disk / disk.sum(), _gaussian_kernel(alias, 1), mode="mirror")
    return np.clip(ndimage.correlate(x, disk[None, :, :, None], mode="mirror"), 0, 1)


def glass_blur(x, severity, rng):
    """Blur, locally shuffle, blur. The reference's "swap" assigns through a view of the pixel, so it
    copies the neighbour into the pixel and leaves the neighbour as it was; we do the same."""
    sigma, delta, iterations = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][severity - 1]
    n, h, w, _ = x.shape
    out = np.floor(_blur(x, sigma) * 255) / 255  # the reference's np.uint8(... * 255) truncates
    rows = np.arange(n)
    for _ in range(iterations):
        for i in range(h - delta, delta, -1):
            for j in range(w - delta, delta, -1):
                dx, dy = rng.integers(-delta, delta, size=(2, n))
                out[rows, i, j] = out[rows, i + dy, j + dx]
    return np.clip(_blur(out, sigma), 0, 1)


def motion_blur(x, severity, rng):
    radius, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    return np.clip(_motion(x, radius, sigma, rng.uniform(-45, 45, len(x))), 0, 1)


def zoom_blur(x, severity, rng):
    top = [1.06, 1.11, 1.16, 1.21, 1.26][severity - 1]
    zooms = np.arange(1, top, 0.01)
    out = x.copy()
    for z in zooms:
        out += _clipped_zoom(x, z)
    return np.clip(out / (len(zooms) + 1), 0, 1)


def snow(x, severity, rng):
    loc, scale, zoom, threshold, radius, sigma, blend = [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][severity - 1]
    n, h, w, _ = x.shape
    layer = _clipped_zoom(rng.normal(loc, scale, (n, h, w, 1)), zoom)
    layer = np.round(np.clip(np.where(layer < threshold, 0, layer), 0, 1) * 255) / 255
    layer = _motion(layer, radius, sigma, rng.uniform(-135, -45, n))
    gray = x.mean(axis=-1, keepdims=True) if x.shape[-1] == 1 else x @ np.array([[0.299], [0.587], [0.114]])
    x = blend * x + (1 - blend) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, 2, axes=(1, 2)), 0, 1)


def frost(x, severity, rng):
    """Blend each image with a crop of a frost texture; each image draws one of the five textures
    modelled on the reference's photographs (``FROST_PHOTOS``) and its own crop."""
    keep, amount = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][severity - 1]
    n, h, w, c = x.shape
    textures = [frost_texture(k, rng) for k in range(len(FROST_PHOTOS))]
    crops = []
    for k in rng.integers(0, len(FROST_PHOTOS), n):
        texture = textures[k]
        r0, c0 = rng.integers(0, texture.shape[0] - h), rng.integers(0, texture.shape[1] - w)
        crops.append(texture[r0:r0 + h, c0:c0 + w])
    crops = np.stack(crops)
    if c == 1:
        crops = crops @ np.array([[0.299], [0.587], [0.114]])
    return np.clip(keep * x + amount * crops, 0, 1)


def fog(x, severity, rng):
    amount, decay = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    n, h, w, _ = x.shape
    size = 1 << int(np.ceil(np.log2(max(h, w))))
    top = x.max(axis=(1, 2, 3), keepdims=True)
    x = x + amount * plasma_fractal(n, size, decay, rng)[:, :h, :w, None]
    return np.clip(x * top / (top + amount), 0, 1)


def brightness(x, severity, rng):
    c = [0.05, 0.1, 0.15, 0.2, 0.3][severity - 1]
    value = x.max(axis=-1, keepdims=True)
    brighter = np.clip(value + c, 0, 1)
    # raising V in HSV scales all channels by the same factor (hue and saturation kept)
    return np.clip(np.where(value > 0, x * brighter / np.maximum(value, 1e-12), brighter), 0, 1)


def contrast(x, severity, rng):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][severity - 1]
    means = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1)


def elastic_transform(x, severity, rng):
    n, h, w, channels = x.shape
    size = min(h, w)
    alpha, sigma, affine = [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                            (0.1, 0.03, 0.03)][severity - 1]
    alpha, sigma, affine = alpha * size, sigma * size, affine * size
    out = np.empty_like(x)
    centre, square = np.float64([h, w]) // 2, size // 3
    pts = np.array([centre + square, [centre[0] + square, centre[1] - square], centre - square])
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for i in range(n):
        moved = pts + rng.uniform(-affine, affine, pts.shape)
        # affine map of output (row, col) to input (row, col): solve moved -> pts
        matrix = np.linalg.solve(np.c_[moved, np.ones(3)], pts).T
        warped = np.stack([ndimage.affine_transform(x[i, :, :, k], matrix[:, :2], matrix[:, 2], order=1,
                                                    mode="mirror") for k in range(channels)], -1)
        dx, dy = (ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma, mode="reflect", truncate=3) * alpha
                  for _ in range(2))
        coords = [rows + dy, cols + dx]
        out[i] = np.stack([ndimage.map_coordinates(warped[:, :, k], coords, order=1, mode="reflect")
                           for k in range(channels)], -1)
    return np.clip(out, 0, 1)


def pixelate(x, severity, rng):
    """Pillow BOX resampling down to ``c`` of the size and back up, as the reference does."""
    from PIL import Image

    c = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    h, w = x.shape[1:3]
    images = np.round(x * 255).astype(np.uint8)
    out = []
    for image in images:
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        pil = pil.resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX)
        out.append(np.asarray(pil).reshape(image.shape))
    return np.stack(out).astype(np.float64) / 255


def jpeg_compression(x, severity, rng):
    quality = [80, 65, 58, 50, 40][severity - 1]
    images = np.round(x * 255).astype(np.uint8)
    out = [tf.io.decode_jpeg(tf.io.encode_jpeg(image, quality=quality), channels=x.shape[-1]).numpy()
           for image in images]
    return np.stack(out).astype(np.float64) / 255


CORRUPTIONS = {f.__name__: f for f in (
    gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur,
    snow, frost, fog, brightness, contrast, elastic_transform, pixelate, jpeg_compression)}
"""Name -> function, in the order of the ImageNet-C paper."""


def plasma_fractal(n, size, decay, rng):
    """``n`` diamond-square height maps of side ``size`` (a power of two), in [0, 1]."""
    maps = np.zeros((n, size, size))
    step, wibble = size, 100.0

    def noisy_mean(total):
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = maps[:, 0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=1)
        square = square + np.roll(square, -1, axis=2)
        maps[:, half:size:step, half:size:step] = noisy_mean(square)
        centres = maps[:, half:size:step, half:size:step]
        corners = maps[:, 0:size:step, 0:size:step]
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, 0:size:step, half:size:step] = noisy_mean(left)
        top = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half:size:step, 0:size:step] = noisy_mean(top)
        step //= 2
        wibble /= decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / maps.max(axis=(1, 2), keepdims=True)


FROST_PHOTOS = (
    (120, 180, (0.304, 0.584, 0.650), 0.072, 0.68),
    (63, 112, (0.787, 0.805, 0.841), 0.086, 0.59),
    (63, 112, (0.787, 0.805, 0.841), 0.086, 0.59),
    (70, 105, (0.541, 0.601, 0.649), 0.114, 0.47),
    (99, 132, (0.440, 0.483, 0.528), 0.170, 0.58),
)
"""The five frost photographs the reference draws from (``frost1.png`` .. ``frost5.jpg`` of
``hendrycks/robustness/ImageNet-C/create_c``; 2 and 3 are the same file) after its 0.2x
linear resize: (height, width, mean RGB, standard deviation of the gray value, correlation
of neighbouring gray pixels). Measured with ``photo_statistics`` on each photograph
resized like ``cv2.resize(..., fx=0.2, fy=0.2)`` (INTER_LINEAR: bilinear samples at
``(i + 0.5) / 0.2 - 0.5``, here ``scipy.ndimage.map_coordinates(order=1)``)."""


def photo_statistics(image):
    """(mean RGB, gray standard deviation, neighbour correlation) of an RGB float image."""
    gray = image @ np.array([0.299, 0.587, 0.114])
    z = gray - gray.mean()
    neighbour = ((z[:, 1:] * z[:, :-1]).mean() + (z[1:] * z[:-1]).mean()) / 2 / z.var()
    return tuple(image.mean(axis=(0, 1))), float(gray.std()), float(neighbour)


def frost_texture(photo, rng):
    """A texture (RGB in [0, 1]) with the size and ``photo_statistics`` of frost photograph ``photo``:
    a smooth field (Gaussian, sigma 10 px) carrying the neighbour correlation, plus pixel noise."""
    h, w, rgb, std, smooth = FROST_PHOTOS[photo]
    field = np.sqrt(smooth) * _standard(ndimage.gaussian_filter(rng.normal(size=(h, w)), 10, mode="wrap"))
    field = _standard(field + np.sqrt(1 - smooth) * rng.normal(size=(h, w)))
    gray_mean = float(np.dot(rgb, [0.299, 0.587, 0.114]))
    gray = gray_mean + std * field
    return np.clip(gray[:, :, None] * np.array(rgb) / gray_mean, 0, 1)


def _standard(v):
    return (v - v.mean()) / v.std()


def _gaussian_kernel(sigma, half):
    t = np.arange(-half, half + 1)
    g = np.exp(-(t**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def _blur(x, sigma):
    return ndimage.gaussian_filter(x, (0, sigma, sigma, 0), mode="nearest")


def _motion(x, radius, sigma, angles):
    """ImageMagick-style motion blur: a one-sided line of Gaussian weights at ``angles`` (degrees)."""
    n, h, w, _ = x.shape
    width = 2 * int(np.ceil(radius)) + 1
    weights = np.exp(-np.arange(width) ** 2 / (2 * sigma**2))
    weights /= weights.sum()
    theta = np.deg2rad(angles)[:, None, None]
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.zeros_like(x, dtype=np.float64)
    batch = np.arange(n)[:, None, None]
    for i, weight in enumerate(weights):
        r = np.clip(rows + np.round(i * np.sin(theta)).astype(int), 0, h - 1)
        c = np.clip(cols + np.round(i * np.cos(theta)).astype(int), 0, w - 1)
        out += weight * x[batch, r, c]
    return out


def _clipped_zoom(x, factor):
    """Zoom the centre of every image by ``factor`` and crop back to the original size."""
    h = x.shape[1]
    crop = int(np.ceil(h / factor))
    top = (h - crop) // 2
    side = int(round(crop * factor))
    zoomed = tf.image.resize(x[:, top:top + crop, top:top + crop], (side, side)).numpy().astype(x.dtype)
    trim = (side - h) // 2
    return zoomed[:, trim:trim + h, trim:trim + h]
