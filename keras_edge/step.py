"""The compiled train and eval steps.

One ``tf.function`` trains every sampled (sub)network on the batch: each sample's
loss is ``ce_weight * CE + plugin terms`` (CE against the batch's ``target``
probabilities when it has them, else its labels; in-place distillation is the built-in
``inplace_distillation`` plugin's term),
the gradients are ``sum(grad_scale_i * grad(loss_i))``, masked by the current
selection, and applied in one optimizer step (on every replica of the run's
``tf.distribute`` strategy). Weights under a 0 mask are restored after the update, so
neither momentum nor weight decay moves them.
"""

from __future__ import annotations

import tensorflow as tf

from keras_edge.context import SubnetSample
from keras_edge.selection import Selection

__all__ = ["Selection", "cross_entropy", "make_train_step", "make_eval_step", "evaluate"]

EVAL_BATCH = 512
"""Batch size of validation and test passes."""


def cross_entropy(labels, logits, label_smoothing=0.0, targets=None):
    """Mean cross-entropy against ``targets`` (probabilities, e.g. MixUp's or a teacher's)
    when given, else against one-hot ``labels``; label smoothing applies to either."""
    num_classes = tf.shape(logits)[-1]
    if targets is None:
        targets = tf.one_hot(labels, num_classes)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / tf.cast(num_classes, tf.float32)
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(targets, logits))


def forward(model, images, config, training):
    if config is None:
        return model(images, training=training)
    return model(images, training=training, subnet=config)


def make_train_step(model, optimizer, selection: Selection, loss_terms, label_smoothing=0.0,
                    jit_compile=False, strategy=None):
    """Build the step ``(batch, configs, weights) -> metrics``.

    ``configs`` is a tuple of subnet configs (``None`` for the full model);
    ``weights`` a float32 ``[k, 3]`` tensor of ``(grad_scale, ce_weight,
    distill_weight)`` rows. ``loss_terms(batch, outputs, subnet)`` returns the
    plugins' extra terms; ``subnet`` is a ``SubnetSample`` of this step's tensors and
    ``outputs`` holds ``logits``, ``view_logits`` (of the batch's ``views``) and, after
    the first sample, ``first_logits`` (the first sample's, a constant to the later ones:
    each sample's gradients come from a tape of their own). The samples after the first
    run as one ``tf.while_loop`` when their configs are tensors of one shape on one replica
    (one traced pass: the DεpS 4-subnet step compiles in 10.6 instead of 18.2 CPU-seconds, its step
    time unchanged, tools/bench_supernet.py). Under a ``tf.distribute`` strategy each
    replica takes its share of the batch and the gradients are summed across replicas. The returned
    ``finite`` flag says whether the loss was finite; the loop stops at once when it is
    not, keeping the last checkpoint (sanitising every gradient instead halved the
    step's speed in tools/bench_loop.py).
    """
    strategy = strategy or tf.distribute.get_strategy()
    variables = selection.trainable
    masked = selection.masked
    replicas = float(strategy.num_replicas_in_sync)

    def sample_loss(batch, views, config, row, first, metrics=None):
        """A sample's loss, ``ce_weight * CE + plugin terms`` (``row``: its ``(grad_scale, ce_weight,
        distill_weight)``), and its logits; with ``metrics``, the terms are recorded there."""
        images, labels = batch["image"], batch["label"]
        inputs = tf.concat([images, *views], axis=0) if views else images
        all_logits = forward(model, inputs, config, training=True)
        parts = tf.split(all_logits, 1 + len(views)) if views else [all_logits]
        outputs = {"logits": parts[0], "view_logits": parts[1:]}
        if first is not None:
            outputs["first_logits"] = first
        loss = row[1] * cross_entropy(labels, parts[0], label_smoothing, batch.get("target"))
        subnet = SubnetSample(config, row[0], row[1], row[2])
        for name, term in (loss_terms(batch, outputs, subnet) or {}).items():
            loss += term
            if metrics is not None:
                metrics[name] = term
        return loss, parts[0]

    def loopable(configs) -> bool:
        """Whether ``configs`` can run as one ``tf.while_loop``: tensors of one shape, and one
        replica (synchronised BatchNorm all-reduces inside a pass, which a loop body cannot)."""
        return (bool(configs) and replicas == 1 and all(tf.is_tensor(c) for c in configs)
                and len({(tuple(c.shape), c.dtype) for c in configs}) == 1)

    def dense(grads):
        return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]

    def replica_step(batch, configs, weights):
        labels = batch["label"]
        views = batch.get("views")
        views = [] if views is None else tf.unstack(views) if tf.is_tensor(views) else list(views)
        metrics = {}
        with tf.GradientTape() as tape:
            loss, first = sample_loss(batch, views, configs[0], weights[0], None, metrics)
            total = weights[0, 0] * loss / replicas  # the optimizer sums the replicas' gradients
        metrics["loss"] = loss
        metrics["accuracy"] = tf.reduce_mean(
            tf.cast(tf.equal(tf.argmax(first, -1, output_type=tf.int32), labels), tf.float32))
        grads = dense(tape.gradient(total, variables))

        def later(i, config, total, grads):
            """Adds sample ``i``'s scaled loss and gradients (a tape of its own: one pass's
            activations are freed before the next pass runs)."""
            with tf.GradientTape() as tape:
                scaled = weights[i, 0] * sample_loss(batch, views, config, weights[i], first)[0] / replicas
            return total + scaled, [a + b for a, b in zip(grads, dense(tape.gradient(scaled, variables)))]

        rest = configs[1:]
        if loopable(rest):
            stacked = tf.stack(rest)  # one traced pass for all of them: a smaller graph to compile
            _, total, grads = tf.while_loop(
                lambda i, *_: i < len(configs),
                lambda i, total, grads: (i + 1, *later(i, stacked[i - 1], total, grads)),
                (tf.constant(1), total, grads))
        else:
            for i, config in enumerate(rest, start=1):
                total, grads = later(i, config, total, grads)
        finite = tf.math.is_finite(total)
        mask_of = {id(v): m for v, m in masked}
        grads = [g * mask_of[id(v)] if id(v) in mask_of else g for g, v in zip(grads, variables)]
        optimizer.apply(grads, variables)
        metrics["finite"] = tf.cast(finite, tf.float32)
        return metrics

    @tf.function(jit_compile=jit_compile)
    def train_step(batch, configs, weights):
        before = [tf.identity(v) for v, _ in masked]
        metrics = strategy.run(replica_step, args=(batch, configs, weights))
        metrics = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in metrics.items()}
        for (var, mask), old in zip(masked, before):  # momentum and weight decay must not move them
            var.assign(tf.where(mask > 0, var, old))
        metrics["finite"] = metrics["finite"] >= 1.0
        return metrics

    return train_step


def make_eval_step(model, jit_compile=False):
    """Build ``batch -> (sum of losses, number correct, number of examples)``."""

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def eval_step(batch, config=None):
        logits = forward(model, batch["image"], config, training=False)
        labels = batch["label"]
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        return tf.reduce_sum(losses), tf.reduce_sum(correct), tf.cast(tf.size(labels), tf.float32)

    return eval_step


def evaluate(model, dataset, config=None, eval_step=None) -> dict:
    """Loss and accuracy of ``model`` (or subnet ``config``) over a dataset."""
    eval_step = eval_step or make_eval_step(model)
    loss = correct = count = 0.0
    for batch in dataset:
        batch_loss, batch_correct, batch_count = eval_step(batch, config)
        loss, correct, count = loss + batch_loss, correct + batch_correct, count + batch_count
    count = float(count) or 1.0
    return {"loss": float(loss) / count, "accuracy": float(correct) / count}
