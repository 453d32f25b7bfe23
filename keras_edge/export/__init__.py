"""TFLite export with on-device training in builtin ops (see docs/deploy.md).

``gradients`` (builtin-gradient layer ops), ``layers`` (Keras layer -> ops),
``weights`` (a weight's variables, selection and SGD update), ``trainer_module``
(the tf.Module and its signatures), ``convert`` (to TFLite, op lists), ``quantize``
(int8 post-training quantisation, LiteRT accuracy), ``command`` (``keras-edge export``).
"""
