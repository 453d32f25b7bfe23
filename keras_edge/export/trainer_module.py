"""The ``tf.Module`` that becomes the on-device training model.

Signatures (all builtin ops; every one has at least one input, because TFLite's Java
``runSignature`` rejects an empty input map):

- ``train(x, y, sample_weight, learning_rate[, masks])``: one SGD-with-momentum step
  on a batch of ``batch_size`` images ``x`` (float32 NHWC in [0, 1]) with int32 labels
  ``y``, each example weighted by ``sample_weight`` (1 for a real example, 0 for
  padding in a short batch). ``learning_rate`` <= 0 means the export's default.
  Guards: an example whose label is outside [0, classes) or whose image has a pixel
  outside [0, 1] (NaN included) is left out and counted; a step whose loss or
  gradients are not finite, or that has no example left, changes no weight, no
  momentum and no batch-norm statistic. Returns ``loss``, ``examples_used``,
  ``bad_labels``, ``bad_images`` and ``applied`` (1 if the model changed).
  Batch-norm layers use the weighted batch statistics and update their moving
  averages. ``masks`` (with ``runtime_masks``) holds one 0/1 value per neuron (output
  channel) of every trained layer, in the order of ``neuron_layout``: a 0 leaves that
  neuron's weights and momentum untouched for this step.
- ``infer(x) -> {"logits", "probabilities"}`` for any batch size.
- ``get_weights(dummy) -> {"weights", "fingerprint", name: tensor}``: every Keras
  weight flattened into one float32 vector (``weight_layout`` gives the order), the
  model's fingerprint, and each weight by ``safe_name(variable.path)``.
- ``set_weights(weights, fingerprint) -> {"status", "weights_set"}``: restores a
  ``weights`` vector of any length without crashing: only when the fingerprint
  matches and the length is right (``status`` 0) are the weights set (and the
  momentum reset); otherwise nothing changes and ``status`` says why (1: weights of
  another model, 2: wrong length).
- with ``flex``: ``save(checkpoint_path)`` / ``restore(checkpoint_path)`` as in the
  official TFLite on-device training guide (these need the Flex delegate).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_edge import _compat
from keras_edge.errors import KerasEdgeError
from keras_edge.export.gradients import softmax_cross_entropy
from keras_edge.export.layers import call_layer
from keras_edge.export.weights import DeviceWeight, fingerprint

SET_WEIGHTS_STATUS = {0: "ok", 1: "the weights belong to another model (fingerprint differs)",
                      2: "the weights vector has the wrong length"}


def _finite(t):
    """True where ``t`` is neither NaN nor infinite (a compare: builtin in TFLite)."""
    return tf.abs(t) <= np.finfo(np.float32).max


def _count(condition):
    return tf.reduce_sum(tf.cast(condition, tf.int32))


class TrainerModule(tf.Module):
    """Rebuilds a functional Keras model's forward pass from builtin-gradient ops.

    ``selection``: ``None`` trains every trainable weight; otherwise a dict
    ``{variable.path: 0/1 mask per output channel or of the weight's shape}`` and
    weights not in it are frozen (no weight gradient, no optimizer state).
    """

    def __init__(self, model, *, batch_size=32, learning_rate=0.0001, momentum=0.9, selection=None,
                 runtime_masks=False):
        super().__init__(name="keras_edge_trainer")
        graph = _functional(model)
        self.batch_size, self.learning_rate, self.momentum = batch_size, learning_rate, momentum
        self.runtime_masks = runtime_masks
        self.input_shape = tuple(model.inputs[0].shape[1:])
        self.num_classes = int(model.outputs[0].shape[-1])
        self.device_weights = _device_weights(model, selection, momentum)
        self.neuron_layout, self._mask_spans = _neuron_layout(model, self.device_weights)
        self.trainable_parameters = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        self.weight_layout, offset = {}, 0
        for w in self.device_weights.values():
            size = int(np.prod(w.shape))
            self.weight_layout[w.name] = (offset, size)
            offset += size
        self.num_weights = offset
        self.fingerprint = fingerprint(self.input_shape, self.num_classes,
                                       [(w.name, w.shape) for w in self.device_weights.values()])
        self._forward = lambda x, params, training, stats, weight=None: _run(graph, x, params, training, stats, weight)

    # ---------------------------------------------------------------- signature bodies

    def train_step(self, x, y, sample_weight, learning_rate, masks=None):
        offered = sample_weight > 0
        good_label = tf.logical_and(y >= 0, y < self.num_classes)
        inside = tf.cast(tf.logical_and(x >= 0.0, x <= 1.0), tf.float32)  # false for NaN
        good_image = tf.reduce_min(inside, axis=list(range(1, len(x.shape)))) > 0.5
        use = tf.logical_and(tf.logical_and(offered, _finite(sample_weight)), tf.logical_and(good_label, good_image))
        # scalar zeros broadcast: a zeros_like would be stored in the model file as a constant
        weight = tf.where(use, sample_weight, 0.0)
        x = tf.where(tf.reshape(use, [-1] + [1] * (len(x.shape) - 1)), x, 0.0)
        y = tf.where(use, y, 0)

        weights = self.device_weights
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            params = {path: w.param(tape) for path, w in weights.items()}
            stats = []
            loss = softmax_cross_entropy(self._forward(x, params, True, stats, weight), y, weight)
        trained = [w for w in weights.values() if w.is_trained]
        grads = tape.gradient(loss, [params[w.path].trained for w in trained])
        for w, grad in zip(trained, grads):
            if grad is None:
                raise KerasEdgeError(f"weight {w.path!r} does not affect the loss; leave it out of the selection")
        used = _count(use)
        total = loss + tf.add_n([tf.reduce_sum(g) for g in grads] + [tf.reduce_sum(m) + tf.reduce_sum(v) for _, m, v in stats])
        apply = tf.logical_and(_finite(total), used > 0)
        rate = tf.where(tf.logical_and(learning_rate > 0, _finite(learning_rate)), learning_rate,
                        tf.constant(self.learning_rate, tf.float32))
        for w, grad in zip(trained, grads):
            w.apply_gradient(grad, rate, self._channel_mask(w, masks), apply)
        for layer, mean, variance in stats:
            for stat, batch_value in ((layer.moving_mean, mean), (layer.moving_variance, variance)):
                moving = weights[stat.path]
                moving.assign(moving.value() * layer.momentum + batch_value * (1.0 - layer.momentum), apply)
        return {"loss": loss, "examples_used": used,
                "bad_labels": _count(tf.logical_and(offered, tf.logical_not(good_label))),
                "bad_images": _count(tf.logical_and(offered, tf.logical_not(good_image))),
                "applied": tf.cast(apply, tf.int32)}

    def infer(self, x):
        params = {path: w.param() for path, w in self.device_weights.items()}
        logits = self._forward(x, params, False, [])
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    def get_weights(self, dummy):
        del dummy  # there only because TFLite's Java runSignature rejects an empty input map
        named = {w.name: w.value() for w in self.device_weights.values()}
        flat = tf.concat([tf.reshape(t, [-1]) for t in named.values()], 0)
        return {**named, "weights": flat, "fingerprint": tf.constant(self.fingerprint)}

    def set_weights(self, weights, fingerprint):
        n, fp = self.num_weights, self.fingerprint
        right_model = tf.logical_and(tf.shape(fingerprint)[0] == len(fp),
                                     tf.reduce_all(tf.equal(tf.pad(fingerprint, [[0, len(fp)]])[: len(fp)], fp)))
        right_length = tf.shape(weights)[0] == n
        ok = tf.logical_and(right_model, right_length)
        flat = tf.pad(weights, [[0, n]])[:n]  # any length in, exactly n out: nothing can overrun
        for w in self.device_weights.values():
            offset, size = self.weight_layout[w.name]
            w.assign(tf.reshape(flat[offset : offset + size], w.shape), ok)
        status = tf.where(right_model, tf.where(right_length, 0, 2), 1)
        return {"status": status, "weights_set": tf.where(ok, len(self.device_weights), 0)}

    def save(self, checkpoint_path):
        names = [w.name for w in self.device_weights.values()]
        tf.raw_ops.Save(filename=checkpoint_path, tensor_names=names,
                        data=[w.value() for w in self.device_weights.values()], name="save")
        return {"checkpoint_path": checkpoint_path}

    def restore(self, checkpoint_path):
        restored = {}
        for w in self.device_weights.values():
            restored[w.name] = tf.raw_ops.Restore(file_pattern=checkpoint_path, tensor_name=w.name, dt=tf.float32)
            w.assign(tf.reshape(restored[w.name], w.shape))
        return restored

    def _channel_mask(self, weight, masks):
        if masks is None:
            return None
        offset, size = self._mask_spans[weight.path]
        mask = masks[offset : offset + size]
        return mask if weight.channels is None else tf.gather(mask, weight.channels)

    # ---------------------------------------------------------------- signatures

    @property
    def num_neurons(self):
        return sum(size for _, size in self.neuron_layout.values())

    def signatures(self, flex=False):
        """Concrete functions by signature name, ready for ``tf.saved_model.save``."""
        image = lambda batch: tf.TensorSpec([batch, *self.input_shape], tf.float32, name="x")  # noqa: E731
        b = self.batch_size
        train_specs = [image(b), tf.TensorSpec([b], tf.int32, name="y"),
                       tf.TensorSpec([b], tf.float32, name="sample_weight"),
                       tf.TensorSpec([], tf.float32, name="learning_rate")]
        if self.runtime_masks:
            train_specs.append(tf.TensorSpec([self.num_neurons], tf.float32, name="masks"))
        train = tf.function(lambda *args: self.train_step(*args), input_signature=train_specs, autograph=False)
        found = {
            "train": train.get_concrete_function(),
            "infer": tf.function(self.infer, input_signature=[image(None)], autograph=False).get_concrete_function(),
            "get_weights": tf.function(self.get_weights, input_signature=[tf.TensorSpec([], tf.int32, name="dummy")],
                                       autograph=False).get_concrete_function(),
            "set_weights": tf.function(self.set_weights, autograph=False, input_signature=[
                tf.TensorSpec([None], tf.float32, name="weights"), tf.TensorSpec([None], tf.int32, name="fingerprint"),
            ]).get_concrete_function(),
        }
        if flex:
            path = [tf.TensorSpec([], tf.string, name="checkpoint_path")]
            found["save"] = tf.function(self.save, input_signature=path, autograph=False).get_concrete_function()
            found["restore"] = tf.function(self.restore, input_signature=path, autograph=False).get_concrete_function()
        return found

    def describe(self):
        """What an app needs to call the model (saved next to it as JSON)."""
        weights = self.device_weights.values()
        return {
            "batch_size": self.batch_size,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "learning_rate": self.learning_rate,
            "momentum": self.momentum,
            "runtime_masks": self.runtime_masks,
            "neuron_layout": {name: list(span) for name, span in self.neuron_layout.items()},
            "weights": {w.name: list(w.shape) for w in weights},
            "weight_layout": {name: list(span) for name, span in self.weight_layout.items()},
            "num_weights": self.num_weights,
            "fingerprint": [int(v) for v in self.fingerprint],
            "trained_parameters": sum(w.num_trained for w in weights),
            "trainable_parameters": self.trainable_parameters,
        }


def _functional(model):
    graph = _compat.sequential_graph(model) if isinstance(model, keras.Sequential) else model
    if graph is None or not _compat.is_functional_graph(graph):
        raise KerasEdgeError(
            f"model {model.name!r} is not a functional model; the export rebuilds models made with "
            "keras.Model(inputs, outputs) or a built keras.Sequential"
        )
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise KerasEdgeError(f"model {model.name!r} has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
                             "the export supports one image input and one logits output")
    return graph


def _layers(model):
    """Every layer of a (possibly nested) functional model."""
    for layer in _functional(model).layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def _device_weights(model, selection, momentum):
    selection = None if selection is None else dict(selection)
    weights = {}
    for layer in _layers(model):
        for variable in layer.weights:
            value = np.asarray(keras.ops.convert_to_numpy(variable), np.float32)
            if not variable.trainable or not layer.trainable:
                mask = False
            else:
                mask = None if selection is None else selection.pop(variable.path, False)
            weights[variable.path] = DeviceWeight(
                variable.path, value, depthwise=isinstance(layer, keras.layers.DepthwiseConv2D),
                mask=mask, momentum=momentum,
            )
    if selection:
        raise KerasEdgeError(f"selection names weights the model has no trainable weight for: {sorted(selection)}; "
                             "use Keras variable paths such as 'conv1/kernel'")
    return weights


def _neuron_layout(model, weights):
    """({layer name: (offset, neurons)}, {weight path: (offset, neurons)}) of the layers
    with a trained weight: where each layer's neurons sit in ``train``'s ``masks``."""
    layout, spans, offset = {}, {}, 0
    for layer in _layers(model):
        trained = [weights[v.path] for v in layer.weights if weights[v.path].is_trained]
        if trained:
            size = trained[0].view_shape[-1]
            layout[layer.name] = (offset, size)
            spans.update({w.path: (offset, size) for w in trained})
            offset += size
    return layout, spans


def _run(graph, x, params, training, stats, example_weight=None):
    def param(layer, attr):
        variable = getattr(layer, attr, None)
        return None if variable is None else params[variable.path]

    def operation_fn(op):
        if isinstance(op, keras.Model):
            return lambda *args, **kwargs: _run(_functional(op), args[0], params, training, stats, example_weight)
        if not isinstance(op, keras.layers.Layer):
            raise KerasEdgeError(f"operation {op.name!r} ({type(op).__name__}) in the model graph is not a layer "
                                 "the export supports; wrap it in a supported Keras layer")
        return lambda *args, **kwargs: call_layer(
            op, args, kwargs, param=param, training=training,
            on_batch_stats=lambda layer, mean, variance: stats.append((layer, mean, variance)),
            example_weight=example_weight,
        )

    return _compat.run_through_graph(graph, x, operation_fn)
