"""Elastic MobileNetV3-style supernet: elastic depth, kernel size and expand ratio."""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from keras_edge.errors import RecipeError

from keras_edge_deps.layers import ElasticBatchNorm, ElasticMBConv
from keras_edge_deps.space import SearchSpace


def make_divisible(value, divisor=8):
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


@keras.saving.register_keras_serializable(package="keras_edge_deps")
class ElasticMobileNet(keras.Model):
    """Stem conv -> stages of elastic MBConv blocks -> 1x1 head conv -> pooling -> classifier.

    ``call(x, training=False, subnet=None)``: ``subnet`` is ``None`` (the full model) or
    an int32 vector of ``self.space.length`` entries (see ``keras_edge_deps.space``).
    A stage's blocks beyond its depth are skipped with ``tf.cond`` and kernels and
    channels are sliced, so a smaller subnet runs less compute in the same trace
    (with BatchNorm synchronised over several replicas, skipped blocks are computed
    and discarded: ``tf.cond`` cannot hold the all-reduce).
    """

    def __init__(self, image_shape, num_classes, stage_widths=(24, 32, 48, 64), stage_strides=(1, 2, 2, 1),
                 stage_activations=("relu", "relu", "hard_swish", "hard_swish"), stem_width=16, stem_stride=2,
                 head_width=256, depths=(2, 3, 4), kernels=(3, 5, 7), expands=(3, 4, 6), width=1.0,
                 bn_momentum=0.9, bn_epsilon=1e-5, fused_batch_norm=True, **kwargs):
        super().__init__(**kwargs)
        if not len(stage_widths) == len(stage_strides) == len(stage_activations):
            raise RecipeError("model.options: stage_widths, stage_strides and stage_activations need one "
                              "entry per stage; give lists of equal length")
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        self.stage_widths, self.stage_strides = tuple(stage_widths), tuple(stage_strides)
        self.stage_activations, self.width = tuple(stage_activations), width
        self.stem_width, self.stem_stride, self.head_width = stem_width, stem_stride, head_width
        self.bn_momentum, self.bn_epsilon, self.fused_batch_norm = bn_momentum, bn_epsilon, fused_batch_norm
        self.space = SearchSpace(len(stage_widths), tuple(depths), tuple(kernels), tuple(expands))
        bn = dict(momentum=bn_momentum, epsilon=bn_epsilon, fused=fused_batch_norm)
        stem = make_divisible(stem_width * width)
        self.stem_conv = keras.layers.Conv2D(stem, 3, stem_stride, "same", use_bias=False, name="stem_conv")
        self.stem_bn = ElasticBatchNorm(**bn, name="stem_bn")
        self.blocks = []  # one list per stage
        channels = stem
        for s, (out, stride, act) in enumerate(zip(stage_widths, stage_strides, stage_activations)):
            out = make_divisible(out * width)
            stage = []
            for j in range(self.space.max_depth):
                stage.append(ElasticMBConv(channels, out, stride if j == 0 else 1, kernels, expands[-1], act,
                                           bn_momentum, bn_epsilon, fused_batch_norm, name=f"stage{s}_block{j}"))
                channels = out
            self.blocks.append(stage)
        self.head_conv = keras.layers.Conv2D(make_divisible(head_width * max(1.0, width)), 1, use_bias=False,
                                             name="head_conv")
        self.head_bn = ElasticBatchNorm(**bn, name="head_bn")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.classifier = keras.layers.Dense(num_classes, name="classifier")
        self.build((None, *self.image_shape))

    def build(self, input_shape):
        self.stem_conv.build(input_shape)
        shape = self.stem_conv.compute_output_shape(input_shape)
        self.stem_bn.build(shape)
        for stage in self.blocks:
            for block in stage:
                block.build()
        channels = self.blocks[-1][-1].out_channels
        self.head_conv.build((None, None, None, channels))
        self.head_bn.build((None, None, None, self.head_conv.filters))
        self.classifier.build((None, self.head_conv.filters))
        self.built = True

    def call(self, x, training=False, subnet=None, calibrate=None):
        """Logits of the full model (``subnet=None``) or of one subnet config.

        ``calibrate`` (a scalar weight) recalibrates BatchNorm statistics instead of
        training them (see ``ElasticBatchNorm``).
        """
        full = subnet is None
        bn = dict(training=training, update_stats=full, calibrate=calibrate)
        x = self.act(self.stem_bn(self.stem_conv(x), **bn), "hard_swish")
        if not full:
            subnet = tf.convert_to_tensor(subnet, tf.int32)
        for s, stage in enumerate(self.blocks):
            for j, block in enumerate(stage):
                if full:
                    x = block(x, kernel=self.space.kernels[-1], expand=self.space.expands[-1], **bn)
                    continue
                kernel, expand = self.space.block_positions(s, j)
                run = functools.partial(block.apply, x, block.sliced_weights(subnet[kernel], subnet[expand]), **bn)
                if j < self.space.depths[0]:
                    x = run()
                elif self.stem_bn.synchronized:  # its all-reduce may not sit in a tf.cond branch
                    x = tf.where(subnet[s] > j, run(), x)
                else:  # a block beyond the stage's depth is skipped, not computed
                    x = tf.cond(subnet[s] > j, run, lambda x=x: x)
        x = self.act(self.head_bn(self.head_conv(x), **bn), "hard_swish")
        return self.classifier(self.pool(x))

    @property
    def input_shape(self):
        return (None, *self.image_shape)

    @property
    def output_shape(self):
        return (None, self.num_classes)

    @staticmethod
    def act(x, name):
        return keras.activations.get(name)(x)

    def subnet_macs(self, config=None) -> int:
        """Multiply-accumulates of one forward pass of one example of a subnet config."""
        depth, kernel, expand = self.space.parts(self.space.largest() if config is None else self.space.check(config))
        h, w = self.image_shape[0], self.image_shape[1]
        h, w = -(-h // self.stem_stride), -(-w // self.stem_stride)
        total = h * w * 9 * self.image_shape[2] * self.stem_conv.filters
        for s, stage in enumerate(self.blocks):
            for j, block in enumerate(stage[:depth[s]]):
                mid = block.in_channels * int(expand[s, j])
                total += h * w * block.in_channels * mid
                h, w = -(-h // block.stride), -(-w // block.stride)
                total += h * w * mid * int(kernel[s, j]) ** 2 + h * w * mid * block.out_channels
        total += h * w * self.blocks[-1][-1].out_channels * self.head_conv.filters
        return int(total + self.head_conv.filters * self.num_classes)

    def get_config(self):
        return {"image_shape": list(self.image_shape), "num_classes": self.num_classes,
                "stage_widths": list(self.stage_widths), "stage_strides": list(self.stage_strides),
                "stage_activations": list(self.stage_activations), "stem_width": self.stem_width,
                "stem_stride": self.stem_stride, "head_width": self.head_width,
                "depths": list(self.space.depths), "kernels": list(self.space.kernels),
                "expands": list(self.space.expands), "width": self.width,
                "bn_momentum": self.bn_momentum, "bn_epsilon": self.bn_epsilon,
                "fused_batch_norm": self.fused_batch_norm, "name": self.name}


def elastic_mobilenet(input_shape, num_classes, width=1.0, **options):
    """Builder for the model zoo (``[model] name = "elastic_mobilenet"``)."""
    return ElasticMobileNet(tuple(input_shape), num_classes, width=width, **options)
