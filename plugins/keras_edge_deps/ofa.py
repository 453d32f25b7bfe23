"""OFA (Cai et al. 2020): progressive shrinking, one recipe stage per phase, KD from the trained full model."""

from __future__ import annotations

import dataclasses
import typing

import tensorflow as tf

from keras_edge import hookimpl
from keras_edge.context import SubnetSample
from keras_edge.errors import RecipeError
from keras_edge_deps.extract import extract
from keras_edge_deps.reorganize import reorganize
from keras_edge_deps.sampling import SubnetSampler


@dataclasses.dataclass(frozen=True)
class Options:
    phase: typing.Literal["full", "kernel", "depth", "expand"] = "full"
    """Which dimensions are elastic in this stage: full model only, then + kernel, + depth, + expand."""
    num_subnets: int = 1
    """Random subnets per step (OFA: 1 in the kernel phase, 2 in depth, 4 in expand)."""
    kd_ratio: float = 1.0
    """Weight of the soft cross-entropy to the frozen trained full model (OFA reference: 1.0)."""
    depths: tuple[int, ...] = ()
    """Depths sampled in this stage (empty: all); OFA's first depth sub-phase uses the two largest."""
    expands: tuple[int, ...] = ()
    """Expand ratios sampled in this stage (empty: all); OFA's first expand sub-phase uses the two largest."""

    reorganize: bool = True
    """Sort expansion channels by importance at the start of an expand phase (OFA's ``re_organize_middle_weights``)."""

    def __post_init__(self):
        if self.num_subnets < 1:
            raise RecipeError(f"plugins.ofa.num_subnets: {self.num_subnets} < 1; use 1, 2 or 4")


class OfaPlugin(SubnetSampler):
    """Samples only the dimensions its phase has made elastic; distils from a frozen copy of the full model."""

    name = "ofa"
    Options = Options

    def __init__(self):
        super().__init__()
        self.teacher, self.teacher_macs, self._soft = None, 0, None

    @hookimpl
    def on_stage_start(self, ctx, options):
        space = self.space(ctx)
        for key, allowed in (("depths", space.depths), ("expands", space.expands)):
            extra = set(getattr(options, key)) - set(allowed)
            if extra:
                raise RecipeError(f"plugins.ofa.{key}: {sorted(extra)} not in the supernet's {list(allowed)}")
        if options.phase != "full" and self.teacher is None:
            self.teacher = extract(ctx.model, None, name="ofa_teacher")
            self.teacher.trainable = False
        if options.phase == "expand" and options.reorganize:
            reorganize(ctx.model, list(options.expands) or space.expands, ctx.optimizer)

    @hookimpl
    def sample_subnets(self, ctx, options):
        space = self.space(ctx)
        if options.phase == "full":
            return [SubnetSample()]
        elastic = {"kernel": 1, "depth": 2, "expand": 3}[options.phase]
        rng = self.generator(ctx)
        choices = dict(kernels=None,
                       depths=(list(options.depths) or None) if elastic >= 2 else [space.depths[-1]],
                       expands=(list(options.expands) or None) if elastic >= 3 else [space.expands[-1]])
        self.teacher_macs += ctx.stage.data.batch_size * self._teacher_macs_per_example(ctx, options)
        return [SubnetSample(space.sample(rng, **choices)) for _ in range(options.num_subnets)]

    def _teacher_macs_per_example(self, ctx, options):
        return ctx.model.subnet_macs(None) if self.teacher is not None and options.kd_ratio else 0

    @hookimpl
    def loss_terms(self, batch, outputs, options):
        kd_ratio = options.kd_ratio
        if self.teacher is None or not kd_ratio or options.phase == "full":
            return None
        images = batch["image"]
        if self._soft is None or self._soft[0] is not images:  # one teacher pass per batch, not per subnet
            self._soft = (images, tf.stop_gradient(tf.nn.softmax(self.teacher(images, training=False))))
        soft = self._soft[1]
        return {"ofa_kd": kd_ratio * tf.reduce_mean(tf.reduce_sum(-soft * tf.nn.log_softmax(outputs["logits"]), -1))}

    @hookimpl
    def on_run_end(self, ctx, summary):
        summary["ofa_teacher_macs"] = self.teacher_macs

    @hookimpl
    def state_dict(self, ctx):
        return {**super().state_dict(ctx), "teacher_macs": self.teacher_macs}

    @hookimpl
    def load_state_dict(self, ctx, state):
        super().load_state_dict(ctx, state)
        self.teacher_macs = state.get("teacher_macs", 0)
