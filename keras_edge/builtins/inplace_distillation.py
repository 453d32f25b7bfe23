"""In-place distillation (BigNAS, DεpS's shrinking phase): every subnet after a step's
first learns the first's detached prediction, ``distill_weight * KL(first || subnet)``.

The weight is each ``SubnetSample``'s ``distill_weight`` (0: nothing is learnt from the
first); the step hands the first sample's logits to the later ones as
``outputs["first_logits"]``.
"""

from __future__ import annotations

import tensorflow as tf

from keras_edge import hookimpl


def distillation(teacher_probs, logits):
    """KL(teacher || student) averaged over the batch."""
    log_student = tf.nn.log_softmax(logits)
    log_teacher = tf.math.log(tf.clip_by_value(teacher_probs, 1e-7, 1.0))
    return tf.reduce_mean(tf.reduce_sum(teacher_probs * (log_teacher - log_student), axis=-1))


class InplaceDistillation:
    autouse = True

    @hookimpl
    def loss_terms(self, outputs, subnet):
        first = outputs.get("first_logits")
        if first is None:
            return None
        teacher = tf.stop_gradient(tf.nn.softmax(first))
        return {"distill": subnet.distill_weight * distillation(teacher, outputs["logits"])}
