"""Jensen-Shannon consistency loss of AugMix over the clean image and its augmented views."""

import tensorflow as tf


def jensen_shannon(logits_list):
    """Mean KL divergence of each prediction to their mixture, averaged over the batch.

    Follows the AugMix reference: the mixture is clipped to [1e-7, 1] before its log.
    """
    probs = [tf.nn.softmax(tf.cast(logits, tf.float32)) for logits in logits_list]
    mixture = tf.clip_by_value(tf.add_n(probs) / len(probs), 1e-7, 1.0)
    log_mixture = tf.math.log(mixture)
    kls = [tf.reduce_sum(p * (tf.math.log(tf.maximum(p, 1e-12)) - log_mixture), axis=-1) for p in probs]
    return tf.reduce_mean(tf.add_n(kls) / len(kls))
