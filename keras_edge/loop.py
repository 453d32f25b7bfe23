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
            validate; <<on_epoch_end>>(logs)
            model = <<on_grow>>(model) or model                      # optimizer rebuilt
            checkpoint (atomic)
        test; <<on_stage_end>>(logs)
    <<on_run_end>>(summary)
"""

from __future__ import annotations

import sys
import time

import keras
import numpy as np
import tensorflow as tf

from keras_edge import plugins as plugin_lib
from keras_edge.checkpoint import StageCache, restore_optimizer
from keras_edge.context import RunContext, SubnetSample
from keras_edge.data import BUILTIN_DATASETS, load_data
from keras_edge.distribute import make_strategy
from keras_edge.errors import KerasEdgeError, PluginError, TrainingError
from keras_edge.models import BUILTIN_MODELS, build_model, count_macs, count_params
from keras_edge.optim import make_optimizer
from keras_edge.step import Selection, evaluate, make_eval_step, make_train_step

EVAL_BATCH = 512


class Trainer:
    """Runs a recipe's stages on one model; ``folder`` (a ``RunFolder``) persists it."""

    def __init__(self, recipe, pm, folder=None):
        self.recipe, self.pm, self.folder = recipe, pm, folder
        self.autouse = plugin_lib.autouse_names(pm)
        self.models = _merge_registry(BUILTIN_MODELS, pm, "register_models")
        self.datasets = _merge_registry(BUILTIN_DATASETS, pm, "register_datasets")
        self.ctx = RunContext(recipe=recipe, run_dir=folder.path if folder else None)
        self.strategy = make_strategy(recipe.train.distribute)
        self.history: list[dict] = []
        self.stage_results: dict[str, dict] = {}
        self.train_macs = 0
        self._data_cache: dict = {}
        self._callers: dict = {}
        self._saved_optimizer = None
        self._saved_plugins = None
        self._sampling = False
        self._samples = [SubnetSample()]
        self._macs_of = (None, 0)

    # ------------------------------------------------------------------ hooks
    def hook(self, name):
        """The hook ``name`` restricted to the plugins active in the current stage."""
        key = (self.ctx.stage_index, name)
        if key not in self._callers:
            active = self.recipe.active_plugins(self.ctx.stage, self.autouse)
            self._callers[key] = plugin_lib.active_caller(self.pm, name, active)
        return self._callers[key]

    def call_each(self, name, **kwargs) -> list:
        """``(plugin name, result)`` of each active implementation of hook ``name``."""
        results = []
        for impl in reversed(self.hook(name).get_hookimpls()):
            results.append((impl.plugin_name, plugin_lib.call_impl(impl, **kwargs)))
        return results

    def implementers(self, name) -> str:
        return "/".join(impl.plugin_name for impl in self.hook(name).get_hookimpls()) or "?"

    def chained_augment(self):
        """The active ``augment_batch`` implementations chained into one map function."""
        impls = list(reversed(self.hook("augment_batch").get_hookimpls()))
        if not impls:
            return None
        ctx = self.ctx

        def augment(batch):
            for impl in impls:
                result = plugin_lib.call_impl(impl, ctx=ctx, batch=batch)
                if result is not None:
                    if not isinstance(result, dict) or "image" not in result:
                        raise PluginError(impl.plugin_name, "augment_batch",
                                          f"returned {type(result).__name__}; return the batch dict or None")
                    batch = result
            return batch

        return augment

    # ------------------------------------------------------------------ run
    def run(self, resume: dict | None = None) -> dict:
        start = time.perf_counter() - (resume or {}).get("elapsed_s", 0.0)
        if resume:
            self._restore(resume)
        first_stage = resume["stage_index"] if resume else 0
        for index in range(first_stage, len(self.recipe.stages)):
            start_epoch = resume["epoch"] + 1 if resume and index == first_stage else 0
            self.run_stage(index, start_epoch, first=index == first_stage)  # on_run_start, resumed too
        summary = self.summary(time.perf_counter() - start)
        self.hook("on_run_end")(ctx=self.ctx, summary=summary)
        return summary

    def run_stage(self, index: int, start_epoch: int, first: bool) -> None:
        ctx, stage = self.ctx, self.recipe.stages[index]
        ctx.stage, ctx.stage_index, ctx.options = stage, index, stage.options
        cache = StageCache(self.recipe, index) if stage.cache else None
        if cache is not None and cache.hit():
            with self.strategy.scope():
                ctx.model = cache.load()
            _say(f"stage {stage.name}: loaded from cache {cache.path}")
            self.stage_results[stage.name] = {**cache.results(), "cached": True}
            return
        data = ctx.data = self.load_data(stage.data)
        began = time.perf_counter()
        ctx.model = self.prepare_model(ctx.model, data)
        batch_size = stage.data.batch_size
        ctx.steps_per_epoch = data.steps_per_epoch(batch_size)
        if stage.train.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.new_optimizer(start_epoch * ctx.steps_per_epoch)
        if self._saved_optimizer is not None:
            restore_optimizer(ctx.optimizer, self._saved_optimizer)
            self._saved_optimizer = None
        if first:
            self.hook("on_run_start")(ctx=ctx)
        self.hook("on_stage_start")(ctx=ctx)
        if self._saved_plugins is not None:  # after the start hooks, so that the saved state wins
            self.load_plugin_states(self._saved_plugins)
            self._saved_plugins = None
        augment = self.chained_augment()
        sampling = self._sampling = bool(self.hook("sample_subnets").get_hookimpls())
        best, waited = -1.0, 0
        if stage.train.early_stopping_patience and not len(data.x_val):
            raise KerasEdgeError(f"stage {stage.name!r}: train.early_stopping_patience needs a validation "
                                 "split; set data.validation_fraction > 0")
        for epoch in range(start_epoch, stage.epochs):
            ctx.epoch = epoch
            ctx.step = epoch * ctx.steps_per_epoch
            epoch_start = time.perf_counter()
            keras.utils.set_random_seed(stage.train.seed + 1000 * index + epoch)  # resumable per epoch
            self.hook("on_epoch_start")(ctx=ctx)
            step_fn = self.train_step_for(self.select_trainable())
            dataset = self.train_dataset(data, batch_size, stage.train.seed, epoch, augment)
            logs = self.train_epoch(step_fn, dataset, sampling, stage, epoch)
            _check_divergence(logs["loss"], data.num_classes, stage, epoch)
            if len(data.x_val):  # validation_fraction = 0: no validation metrics, not zeros
                val = evaluate(ctx.model, data.eval_dataset("val", EVAL_BATCH), eval_step=self._eval_step())
                logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
            logs.update(learning_rate=float(ctx.optimizer.learning_rate),
                        epoch_time_s=time.perf_counter() - epoch_start)
            self.hook("on_epoch_end")(ctx=ctx, logs=logs)
            _say(f"stage {stage.name} epoch {epoch + 1}/{stage.epochs}: "
                 + ", ".join(f"{k}={v:.4f}" for k, v in logs.items() if k in ("loss", "accuracy", "val_accuracy")))
            self.history.append({"stage": stage.name, "epoch": epoch + 1, **logs})
            grown = self.hook("on_grow")(ctx=ctx, model=ctx.model)
            if grown is not None:
                self.replace_model(grown)
            if self.folder:
                self.folder.save_epoch(self, index, epoch, time.perf_counter() - began)
            if stage.train.early_stopping_patience:
                if logs["val_accuracy"] > best:
                    best, waited = logs["val_accuracy"], 0
                else:
                    waited += 1
                    if waited >= stage.train.early_stopping_patience:
                        _say(f"stage {stage.name}: early stop after epoch {epoch + 1}")
                        break
        test = evaluate(ctx.model, data.eval_dataset("test", EVAL_BATCH), eval_step=self._eval_step())
        results = {"test_loss": test["loss"], "test_accuracy": test["accuracy"],
                   "time_s": time.perf_counter() - began}
        self.hook("on_stage_end")(ctx=ctx, logs=results)
        self.stage_results[stage.name] = results
        if cache is not None:
            cache.save(ctx.model, results)

    def train_epoch(self, step_fn, dataset, sampling: bool, stage, epoch: int) -> dict:
        ctx = self.ctx
        progress = keras.utils.Progbar(ctx.steps_per_epoch, verbose=1 if sys.stdout.isatty() else 2,
                                       stateful_metrics=["loss", "accuracy"], unit_name="step")
        sums: dict = {}
        count, last_refresh = 0, 0.0
        samples = [SubnetSample()]
        configs, weights = _step_inputs(samples)
        for batch in dataset:
            if sampling:
                samples = self.sample_subnets()
                configs, weights = _step_inputs(samples)
            out = step_fn(batch, configs, weights)
            if not bool(out["finite"]):
                raise TrainingError(
                    f"the loss became NaN or infinite in stage {stage.name!r}, epoch {epoch + 1}, step "
                    f"{ctx.step + 1} (global step {ctx.global_step + 1}); the last good checkpoint is kept; "
                    "lower train.learning_rate or check the data")
            for key, value in out.items():
                if key != "finite":
                    sums[key] = sums.get(key, 0.0) + value
            count += 1
            ctx.step += 1
            ctx.global_step += 1
            self.train_macs += self._step_macs(samples, batch)
            now = time.perf_counter()
            if now - last_refresh > 0.5 or count == ctx.steps_per_epoch:
                last_refresh = now
                progress.update(count, [(k, float(v) / count) for k, v in sums.items()])
        return {k: float(v) / max(count, 1) for k, v in sums.items()}

    # ------------------------------------------------------------------ parts
    def train_dataset(self, data, batch_size, seed, epoch, augment):
        """The epoch's batches, split over the strategy's replicas when there are several."""
        replicas = self.strategy.num_replicas_in_sync
        if replicas == 1:
            return data.train_dataset(batch_size, seed, epoch, augment)
        return self.strategy.distribute_datasets_from_function(
            lambda input_ctx: data.train_dataset(batch_size, seed, epoch, augment, replicas,
                                                 input_ctx.input_pipeline_id, input_ctx.num_input_pipelines))

    def load_data(self, config):
        if config not in self._data_cache:
            self._data_cache[config] = load_data(config, self.datasets)
        return self._data_cache[config]

    def prepare_model(self, model, data):
        """Build the model, or give it a new classifier when the class count changes."""
        with self.strategy.scope():
            model = self._adapt_model(model, data)
        self.synchronize_batch_norm(model)
        return model

    def synchronize_batch_norm(self, model) -> None:
        """With several replicas, normalisation layers (those with a ``synchronized``
        attribute) use the statistics of the global batch, as on one device."""
        if self.strategy.num_replicas_in_sync > 1:
            for layer in model._flatten_layers():
                if hasattr(layer, "synchronized"):
                    layer.synchronized = True

    def _adapt_model(self, model, data):
        if model is None:
            keras.utils.set_random_seed(self.recipe.train.seed)
            return build_model(self.recipe.model, data.input_shape, data.num_classes, self.models)
        if tuple(model.input_shape[1:]) != tuple(data.input_shape):
            raise KerasEdgeError(
                f"stage {self.ctx.stage.name!r}: its data has shape {data.input_shape} but the model takes "
                f"{tuple(model.input_shape[1:])}; set data.image_size / data.channels in that stage")
        if model.output_shape[-1] == data.num_classes:
            return model
        # Seeded here: after a cached stage nothing else has seeded this process yet.
        keras.utils.set_random_seed(self.ctx.stage.train.seed + 1000 * self.ctx.stage_index)
        return replace_classifier(model, data.num_classes)

    def new_optimizer(self, iterations: int = 0) -> None:
        ctx = self.ctx
        with self.strategy.scope():
            ctx.optimizer = make_optimizer(ctx.stage.train, ctx.steps_per_epoch)
            ctx.optimizer.build(ctx.model.trainable_variables)
        ctx.optimizer.iterations.assign(iterations)
        self._steps: dict = {}
        self._eval = None

    def replace_model(self, model) -> None:
        if not isinstance(model, keras.Model):
            raise PluginError(self.implementers("on_grow"), "on_grow",
                              f"returned {type(model).__name__}; return a keras.Model or None")
        with self.strategy.scope():
            iterations = int(self.ctx.optimizer.iterations.numpy())
            if self.recipe.train.distribute != "none":  # the plugin built it outside the strategy
                mirrored = keras.models.clone_model(model)
                mirrored.set_weights(model.get_weights())
                model = mirrored
        self.synchronize_batch_norm(model)
        self.ctx.model = model
        self.new_optimizer(iterations)

    def select_trainable(self) -> dict | None:
        results = [(n, r) for n, r in self.call_each("select_trainable", ctx=self.ctx, model=self.ctx.model)
                   if r is not None]
        if not results:
            return None
        names = {v.path for v in self.ctx.model.trainable_variables}
        masks: dict = {}
        for plugin, result in results:
            if not isinstance(result, dict):
                raise PluginError(plugin, "select_trainable", f"returned {type(result).__name__}; return "
                                  "{variable.path: mask} or None")
            for path, mask in result.items():
                if path not in names:
                    raise PluginError(plugin, "select_trainable", f"unknown variable {path!r}; use "
                                      "variable.path of model.trainable_variables")
                mask = np.asarray(mask, np.float32)
                masks[path] = mask if path not in masks else masks[path] * mask
        return masks

    def train_step_for(self, masks):
        """The compiled step for this selection (reused, and retraced only for a new structure)."""
        selection = Selection(self.ctx.model, masks)
        if selection.key not in self._steps:
            with self.strategy.scope():  # mask variables live on every replica
                self._steps[selection.key] = (selection, make_train_step(
                    self.ctx.model, self.ctx.optimizer, selection, self.loss_terms,
                    self.ctx.stage.train.label_smoothing, self.jit_compile(), self.strategy))
        cached, step = self._steps[selection.key]
        cached.update_masks(selection)
        return step

    def loss_terms(self, batch, outputs, index):
        terms = {}
        subnet = self._samples[index]
        for plugin, result in self.call_each("loss_terms", ctx=self.ctx, batch=batch, outputs=outputs,
                                             model=self.ctx.model, subnet=subnet):
            if result is None:
                continue
            if not isinstance(result, dict):
                raise PluginError(plugin, "loss_terms", f"returned {type(result).__name__}; return {{name: scalar}}")
            terms.update(result)
        return terms

    def sample_subnets(self):
        samples = self.hook("sample_subnets")(ctx=self.ctx)
        if samples is None:
            samples = [SubnetSample()]
        if not isinstance(samples, (list, tuple)) or not samples or \
                not all(isinstance(s, SubnetSample) for s in samples):
            raise PluginError(self.implementers("sample_subnets"), "sample_subnets",
                              "return a non-empty list of SubnetSample or None")
        self._samples = list(samples)
        return self._samples

    def _eval_step(self):
        if self._eval is None:
            self._eval = make_eval_step(self.ctx.model, self.jit_compile())
        return self._eval

    def jit_compile(self) -> bool:
        """XLA as the recipe says; "auto" uses it on GPUs, when no subnets are sampled.

        On CPUs XLA made the steps slower than TensorFlow's oneDNN kernels
        (tools/bench_loop.py: Keras fit 8.7 s per epoch without XLA, 16 s with it).
        """
        setting = self.ctx.stage.train.jit_compile
        if setting != "auto":
            return setting
        if self.ctx.stage.train.deterministic or self._sampling or not tf.config.list_logical_devices("GPU"):
            return False  # determinism: XLA lacks deterministic kernels; subnets: their shapes vary
        return all(getattr(layer, "supports_jit", True) for layer in self.ctx.model._flatten_layers())

    def _step_macs(self, samples, batch) -> int:
        local = self.strategy.experimental_local_results
        views = batch.get("views")
        images = sum(int(t.shape[0]) for t in local(batch["image"]))
        images *= 1 + (0 if views is None else len(local(views)[0]))
        model = self.ctx.model
        macs = 0
        for s in samples:
            if s.config is not None and hasattr(model, "subnet_macs"):
                macs += int(model.subnet_macs(s.config))
            else:
                macs += self._model_macs()
        return 3 * images * macs  # forward + two backward products per layer

    def _model_macs(self) -> int:
        model = self.ctx.model
        if self._macs_of[0] is not model:
            self._macs_of = (model, count_macs(model))
        return self._macs_of[1]

    def summary(self, wall_time_s: float) -> dict:
        model = self.ctx.model
        last = self.stage_results[self.recipe.stages[-1].name]
        return {
            "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
            "wall_time_s": wall_time_s, "params": count_params(model), "macs": count_macs(model),
            "train_macs": self.train_macs, "stages": self.stage_results,
            "stage_times_s": {name: r["time_s"] for name, r in self.stage_results.items()},
            "epochs": len(self.history), "recipe": self.recipe.source,
        }

    # ------------------------------------------------------------------ resume
    def state(self, elapsed_s: float) -> dict:
        plugin_states = {}
        for impl in self.pm.hook.state_dict.get_hookimpls():
            value = plugin_lib.call_impl(impl, ctx=self.ctx)
            if value is not None:
                plugin_states[impl.plugin_name] = value
        return {"stage_index": self.ctx.stage_index, "epoch": self.ctx.epoch, "global_step": self.ctx.global_step,
                "history": self.history, "stage_results": self.stage_results, "train_macs": self.train_macs,
                "elapsed_s": elapsed_s, "plugins": plugin_states}

    def _restore(self, state: dict) -> None:
        self.history, self.stage_results = state["history"], state["stage_results"]
        self.train_macs, self.ctx.global_step = state["train_macs"], state["global_step"]
        self.ctx.model = state["model"]
        self._saved_optimizer = state["optimizer"]
        self._saved_plugins = state["plugins"]

    def load_plugin_states(self, states: dict) -> None:
        for impl in self.pm.hook.load_state_dict.get_hookimpls():
            if impl.plugin_name in states:
                plugin_lib.call_impl(impl, ctx=self.ctx, state=states[impl.plugin_name])


def _step_inputs(samples):
    """The train step's ``configs`` tuple and ``[k, 3]`` weights tensor for these samples."""
    configs = tuple(None if s.config is None else tf.convert_to_tensor(s.config) for s in samples)
    weights = tf.constant([[s.grad_scale, s.ce_weight, s.distill_weight] for s in samples], tf.float32)
    return configs, weights


def replace_classifier(model, num_classes: int):
    """A copy of functional ``model`` whose last Dense layer has ``num_classes`` units."""
    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense) or not hasattr(model, "inputs"):
        raise KerasEdgeError(f"cannot change {model.name} to {num_classes} classes: its last layer is "
                             f"{type(last).__name__}, not Dense; use a dataset with {model.output_shape[-1]} classes")
    head = keras.layers.Dense(num_classes, name=last.name)
    return keras.Model(model.inputs, head(last.input), name=model.name)


DIVERGED = 100.0
"""An epoch whose mean loss exceeds this many times ln(classes), a uniform guess's loss, has diverged."""


def _check_divergence(loss: float, classes: int, stage, epoch: int) -> None:
    if loss > DIVERGED * np.log(classes):
        raise TrainingError(
            f"the training loss diverged in stage {stage.name!r}, epoch {epoch + 1} (mean {loss:.3g}, "
            f"over {DIVERGED:g} x ln({classes}), the loss of a uniform guess); the last good checkpoint is "
            "kept; lower train.learning_rate")


def _merge_registry(builtin: dict, pm, hook: str) -> dict:
    """The built-in names plus those every installed plugin registers through ``hook``."""
    merged = dict(builtin)
    for impl in getattr(pm.hook, hook).get_hookimpls():
        result = impl.function()
        if not isinstance(result, dict):
            raise PluginError(impl.plugin_name, hook, f"returned {type(result).__name__}; return {{name: callable}}")
        for name in result:
            if name in merged:
                raise PluginError(impl.plugin_name, hook, f"name {name!r} is already defined; rename it")
        merged.update(result)
    return merged


def _say(message: str) -> None:
    print(message, flush=True)
