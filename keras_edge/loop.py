"""The training loop: stages of epochs of compiled steps, with hooks in between.

Pseudocode of one run, with the hooks (<<name>>) where they fire::

    for stage in recipe.stages:
        data = load(stage.data); model = build or adapt head      # <<register_models/datasets>>
        <<on_run_start>> (first stage only); <<on_stage_start>>
        for epoch in stage:
            <<on_epoch_start>>
            masks = AND of <<select_trainable>>                      # frozen weights never move
            for batch in data.train (tf.data, <<augment_batch>> traced into it):
                samples = <<sample_subnets>> or [full model]
                train_step(batch, samples)                           # one tf.function;
                                                                     # <<loss_terms>> traced into it
                <<on_step_end>>(metrics)
            validate (<<evaluation_weights>>); <<on_epoch_end>>(logs) # metrics.csv, TensorBoard,
                                                                     # early stopping, progress
            model = <<on_grow>>(model) or model                      # optimizer rebuilt,
                                                                     # <<configure_optimizer>>
            <<on_checkpoint>>(state)                                 # checkpoints
        test; <<on_stage_end>>(logs)
    <<on_run_end>>(summary)                                          # model.keras, summary.json, plots

The run's own features (checkpoints, metrics.csv, TensorBoard, progress, early
stopping, summary, plots) are built-in plugins on these hooks (``keras_edge.builtins``).
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf

from keras_edge.augment import augment_pipeline
from keras_edge.checkpoint import StageCache, restore_optimizer
from keras_edge.context import RunContext, SubnetSample, step_inputs
from keras_edge.data import BUILTIN_DATASETS, load_data
from keras_edge.dispatch import Hooks, checked
from keras_edge.distribute import distributed_batches, make_strategy
from keras_edge.evaluation_weights import evaluation_weights
from keras_edge.method_hooks import MethodHooks
from keras_edge.guards import StopRequest, check_divergence, check_finite, check_stop
from keras_edge.model_setup import model_for_stage, onto_replicas, optimizer_for_stage, registry
from keras_edge.models import BUILTIN_MODELS
from keras_edge.run_state import RunState, history_row
from keras_edge.step import EVAL_BATCH, evaluate
from keras_edge.step_cache import StepCache
from keras_edge.step_macs import StepMacs


class Trainer:
    """Runs a recipe's stages on one model; ``run_dir`` is where the built-in plugins write."""

    def __init__(self, recipe, pm, run_dir=None):
        self.hooks = Hooks(pm, recipe)
        self.models = registry(BUILTIN_MODELS, self.hooks, "register_models")
        self.datasets = registry(BUILTIN_DATASETS, self.hooks, "register_datasets")
        self.ctx = RunContext(recipe=recipe, run_dir=run_dir)
        self.strategy = make_strategy(recipe.train.distribute)
        self.state = RunState()
        self.methods = MethodHooks(self.hooks, self.ctx)
        self.steps = StepCache(self.strategy, self.methods.loss_terms)
        self.macs = StepMacs(self.strategy)
        self._data: dict = {}
        self._resumed: dict | None = None

    def run(self, resume: dict | None = None) -> dict:
        start = time.perf_counter() - (resume or {}).get("elapsed_s", 0.0)
        self._resumed = resume
        if resume:
            self.state.restore(resume, self.ctx)
            self.ctx.model = resume["model"]
        first = resume["stage_index"] if resume else 0
        StopRequest.training = True
        try:
            for index in range(first, len(self.ctx.recipe.stages)):
                start_epoch = resume["epoch"] + 1 if resume and index == first else 0
                self.run_stage(index, start_epoch, first=index == first)  # on_run_start, resumed too
        finally:
            StopRequest.training = False
        check_stop()
        summary = self.state.summary(self.ctx, time.perf_counter() - start)
        with evaluation_weights(self.hooks, self.ctx):  # the summary plugin saves model.keras in on_run_end
            self.hooks.call("on_run_end", ctx=self.ctx, summary=summary)
        return summary

    def run_stage(self, index: int, start_epoch: int, first: bool) -> None:
        ctx, stage = self.ctx, self.ctx.recipe.stages[index]
        ctx.stage, ctx.stage_index = stage, index
        self.hooks.for_stage(stage)
        cache = StageCache(ctx.recipe, index) if stage.cache else None
        if cache is not None and cache.hit():
            with self.strategy.scope():
                ctx.model = cache.load()
            print(f"stage {stage.name}: loaded from cache {cache.path}", flush=True)
            self.state.stage_results[stage.name] = {**cache.results(), "cached": True}
            return
        data = ctx.data = self.load_data(stage.data)
        began = time.perf_counter()
        ctx.model = model_for_stage(ctx.model, data, ctx, self.strategy, self.models)
        ctx.steps_per_epoch = data.steps_per_epoch(stage.data.batch_size)
        if stage.train.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.new_optimizer(start_epoch * ctx.steps_per_epoch)
        if self._resumed is not None:
            restore_optimizer(ctx.optimizer, self._resumed["optimizer"])
        if first:
            self.hooks.call("on_run_start", ctx=ctx)
        self.hooks.call("on_stage_start", ctx=ctx)
        if self._resumed is not None:  # after the start hooks, so that the saved state wins
            self.hooks.load_states(self._resumed["plugins"], ctx)
            self._resumed = None
        augment = augment_pipeline(self.hooks, ctx)
        for epoch in range(start_epoch, stage.epochs):
            self.run_epoch(data, epoch, augment, time.perf_counter() - began)
            if ctx.stop_stage:
                break
        with evaluation_weights(self.hooks, self.ctx):
            test = evaluate(ctx.model, data.eval_dataset("test", EVAL_BATCH), eval_step=self.steps.eval_step())
        results = {"test_loss": test["loss"], "test_accuracy": test["accuracy"], "time_s": time.perf_counter() - began}
        self.hooks.call("on_stage_end", ctx=ctx, logs=results)
        self.state.stage_results[stage.name] = results
        if cache is not None:
            cache.save(ctx.model, results)

    def run_epoch(self, data, epoch: int, augment, elapsed_s: float) -> None:
        ctx, stage = self.ctx, self.ctx.stage
        ctx.epoch, ctx.step, ctx.stop_stage = epoch, epoch * ctx.steps_per_epoch, False
        epoch_start = time.perf_counter()
        keras.utils.set_random_seed(stage.train.seed + 1000 * ctx.stage_index + epoch)  # resumable per epoch
        self.hooks.call("on_epoch_start", ctx=ctx)
        step = self.steps.train_step(self.methods.select_trainable())
        dataset = distributed_batches(self.strategy, data, stage.data.batch_size, stage.train.seed, epoch, augment)
        logs = self.train_epoch(step, dataset)
        check_divergence(logs["loss"], ctx)
        if len(data.x_val):  # validation_fraction = 0: no validation metrics, not zeros
            with evaluation_weights(self.hooks, self.ctx):
                val = evaluate(ctx.model, data.eval_dataset("val", EVAL_BATCH), eval_step=self.steps.eval_step())
            logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        logs.update(learning_rate=float(keras.ops.convert_to_numpy(ctx.optimizer.learning_rate)),
                    epoch_time_s=time.perf_counter() - epoch_start)
        self.hooks.call("on_epoch_end", ctx=ctx, logs=logs)
        ctx.history.append(history_row(ctx, logs))
        grown = self.hooks.first("on_grow", ctx=ctx, model=ctx.model)
        if grown is not None:
            self.replace_model(*grown)
        if self.hooks.has("on_checkpoint"):
            plugins = dict(self.hooks.every("state_dict", ctx=ctx))
            state = self.state.checkpoint(ctx, plugins, elapsed_s + time.perf_counter() - epoch_start)
            self.hooks.call("on_checkpoint", ctx=ctx, state=state)

    def train_epoch(self, step, dataset) -> dict:
        ctx = self.ctx
        sampling, per_step = self.steps.sampling, self.hooks.has("on_step_end")
        samples = [SubnetSample()]
        configs, weights = step_inputs(samples)
        sums: dict = {}
        for batch in dataset:
            if sampling:
                samples = self.methods.sample_subnets()
                configs, weights = step_inputs(samples)
            out = step(batch, configs, weights)
            check_finite(out.pop("finite"), ctx)
            check_stop()
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + value
            ctx.step += 1
            ctx.global_step += 1
            self.state.train_macs += self.macs(ctx.model, samples, batch)
            if per_step:
                self.hooks.call("on_step_end", ctx=ctx, metrics=out)
        count = ctx.step - ctx.epoch * ctx.steps_per_epoch
        return {k: float(v) / max(count, 1) for k, v in sums.items()}

    # ------------------------------------------------------------------ parts
    def load_data(self, config):
        if config not in self._data:
            self._data[config] = load_data(config, self.datasets)
        return self._data[config]

    def new_optimizer(self, iterations: int = 0) -> None:
        ctx = self.ctx
        ctx.optimizer = optimizer_for_stage(self.hooks, ctx, self.strategy, iterations)
        self.steps.reset(ctx.model, ctx.optimizer, ctx.stage.train, self.hooks.has("sample_subnets"))

    def replace_model(self, plugin: str, model) -> None:
        checked(plugin, "on_grow", model, keras.Model, "return a keras.Model or None")
        iterations = int(self.ctx.optimizer.iterations.numpy())
        self.ctx.model = onto_replicas(model, self.strategy, self.ctx.recipe.train.distribute != "none")
        self.new_optimizer(iterations)
