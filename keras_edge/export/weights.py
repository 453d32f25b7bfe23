"""One Keras weight as the exported model stores and updates it.

A weight trains fully, partly (a subset of output channels) or not at all. A partly
trained weight is stored as two variables, the selected channels and the rest, so
that its gradient and its momentum exist for the selected channels only; the full
weight is reassembled with one gather for the forward pass.
"""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import tensorflow as tf

from keras_edge.errors import KerasEdgeError
from keras_edge.export.gradients import Param


def safe_name(path: str) -> str:
    """A signature-safe tensor name for a Keras variable path (``conv1/kernel`` -> ``conv1_kernel``)."""
    return re.sub(r"\W", "_", path)


def fingerprint(input_shape, num_classes, weights) -> np.ndarray:
    """Four int32 identifying a weight layout: the input shape, the number of classes and
    every weight's name and shape in order. Weights saved from one export restore into
    another export of the same model (any batch size, selection or learning rate) and
    into no other model."""
    layout = json.dumps([list(input_shape), int(num_classes), [[name, list(shape)] for name, shape in weights]])
    return np.frombuffer(hashlib.sha256(layout.encode()).digest()[:16], "<i4").copy()


class DeviceWeight(tf.Module):
    """Variables, selection and SGD-with-momentum update of one Keras weight.

    ``value``: the weight's initial value (Keras shape). ``depthwise``: the weight is a
    [kh, kw, C, M] depthwise kernel whose output channels are C*M. ``mask``: ``None``
    (train all), ``False`` (frozen), or a 0/1 array per output channel or of the
    weight's full shape (elements outside the mask never change).
    """

    def __init__(self, path, value, *, depthwise=False, mask=None, momentum=0.0):
        super().__init__(name=safe_name(path))
        self.path, self.shape = path, tuple(value.shape)
        view = value.reshape(value.shape[:-2] + (-1,)) if depthwise else value
        self.view_shape, n = view.shape, view.shape[-1]
        self.channels, element_mask = _channels(path, mask, value.shape, view.shape)
        self.element_mask = None if element_mask is None else tf.constant(element_mask, tf.float32)
        self.momentum, self.velocity = momentum, None
        if self.channels is not None and len(self.channels) == 0:
            self.frozen_part = tf.Variable(view, name=self.name)
            self.trained = None
            return
        if self.channels is None:
            self.trained, self.frozen_part = tf.Variable(view, name=self.name), None
            selected = view
        else:
            rest = np.setdiff1d(np.arange(n), self.channels)
            self.order = tf.constant(np.argsort(np.concatenate([self.channels, rest])), tf.int32)
            self.rest_index = rest
            selected = view[..., self.channels]
            self.trained = tf.Variable(selected, name=self.name + "_selected")
            self.frozen_part = tf.Variable(view[..., rest], name=self.name + "_frozen")
        self.velocity = tf.Variable(np.zeros_like(selected), name=self.name + "_momentum") if momentum else None

    @property
    def is_trained(self) -> bool:
        return self.trained is not None

    @property
    def num_trained(self) -> int:
        """Number of scalars that may change (selected channels times channel size)."""
        return 0 if self.trained is None else int(np.prod(self.trained.shape))

    def value(self, trained=None):
        """The full weight in Keras shape; ``trained`` replaces a read of the trained part."""
        if self.trained is None:
            view = tf.convert_to_tensor(self.frozen_part)
        else:
            trained = tf.convert_to_tensor(self.trained) if trained is None else trained
            view = trained if self.frozen_part is None else tf.gather(
                tf.concat([trained, tf.convert_to_tensor(self.frozen_part)], -1), self.order, axis=-1
            )
        return tf.reshape(view, self.shape) if tuple(view.shape) != self.shape else view

    def param(self, tape=None):
        """The ``Param`` an op receives; the trained part is watched by ``tape``."""
        if self.trained is None or tape is None:
            return Param(self.value())
        trained = tf.convert_to_tensor(self.trained)
        tape.watch(trained)
        return Param(self.value(trained), trained, self.channels)

    def assign(self, full, apply=None):
        """Set the weight from a full (Keras-shaped) tensor; with ``apply`` (a bool
        scalar tensor) only where it is true, and then the momentum restarts at zero."""
        view = tf.reshape(full, self.view_shape)
        if self.trained is None:
            parts = [(self.frozen_part, view)]
        elif self.frozen_part is None:
            parts = [(self.trained, view)]
        else:
            parts = [(self.trained, tf.gather(view, self.channels, axis=-1)),
                     (self.frozen_part, tf.gather(view, self.rest_index, axis=-1))]
        for variable, value in parts:
            variable.assign(value if apply is None else tf.where(apply, value, tf.convert_to_tensor(variable)))
        if self.velocity is not None:  # a broadcast scalar: no zeros tensor stored in the model file
            reset = tf.constant(True) if apply is None else apply
            self.velocity.assign(tf.where(reset, tf.constant(0.0), tf.convert_to_tensor(self.velocity)))

    def apply_gradient(self, grad, learning_rate, channel_mask=None, apply=None):
        """One step of Keras' SGD: ``v = momentum * v - lr * g; w += v`` (``w -= lr * g``
        without momentum). ``channel_mask`` (float [selected channels]) gates the step at
        run time: a masked channel keeps its weight and its momentum unchanged.
        ``apply`` (bool scalar tensor): when false, nothing changes, even if ``grad``
        holds NaN or infinity."""
        mask = self.element_mask
        if channel_mask is not None:
            mask = channel_mask if mask is None else mask * channel_mask
        if self.velocity is None:
            step = -learning_rate * grad
        else:
            v_old = tf.convert_to_tensor(self.velocity)
            step = self.momentum * v_old - learning_rate * grad
            if mask is not None:
                step = mask * step + (1.0 - mask) * v_old
            self.velocity.assign(step if apply is None else tf.where(apply, step, v_old))
        step = step if mask is None else step * mask
        self.trained.assign_add(step if apply is None else tf.where(apply, step, 0.0))


def _channels(path, mask, shape, view_shape):
    """(selected channel indices or None for all, element mask over them or None)."""
    if mask is None:
        return None, None
    if mask is False:
        return np.zeros(0, np.int64), None
    mask = np.asarray(mask)
    n = view_shape[-1]
    if mask.shape == (n,):
        return _all_or(np.flatnonzero(mask), n), None
    if mask.shape != tuple(shape):
        raise KerasEdgeError(
            f"selection for {path!r} has shape {mask.shape}; use one 0/1 value per output channel "
            f"({n},) or the weight's shape {tuple(shape)}"
        )
    mask = mask.reshape(view_shape).astype(np.float32)
    channels = np.flatnonzero(mask.reshape(-1, n).any(0))
    element = mask[..., channels]
    return _all_or(channels, n), None if element.all() else element


def _all_or(channels, n):
    return None if len(channels) == n else channels
