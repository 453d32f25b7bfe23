"""The loop honours each hook's contract: masks, subnets, growth, augmentation, losses."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_edge import hookimpl
from keras_edge.context import SubnetSample
from keras_edge.errors import PluginError, TrainingError
from keras_edge.loop import Trainer
from keras_edge.plugins import get_plugin_manager
from keras_edge.recipe import parse_recipe
from keras_edge.runner import run_recipe
from keras_edge.testing import run_with_plugins
from tests.conftest import tiny


class Recorder:
    """Keeps the model's trainable weights at each epoch start, and the masks it chose."""

    def __init__(self, select=None):
        self.select, self.starts, self.masks = select, [], []

    @hookimpl
    def on_epoch_start(self, ctx):
        self.starts.append({v.path: v.numpy().copy() for v in ctx.model.trainable_variables})

    @hookimpl
    def select_trainable(self, ctx, model):
        if self.select is None:
            return None
        masks = self.select(ctx, model)
        self.masks.append(masks)
        return masks


def half_of_conv1(ctx, model):
    rng = np.random.default_rng(ctx.epoch)
    conv = model.get_layer("conv1").kernel
    mask = (rng.random(conv.shape[-1]) < 0.5).astype(np.float32)
    mask[0], mask[1] = 1, 0
    return {conv.path: mask, model.get_layer("fc").kernel.path: 0.0}


@pytest.mark.parametrize("optimizer, jit", [("sgd", True), ("adam", False)])
def test_frozen_weights_never_move_even_with_momentum_and_weight_decay(optimizer, jit):
    recorder = Recorder(half_of_conv1)
    recipe = tiny(train={"epochs": 3, "optimizer": optimizer, "momentum": 0.9, "weight_decay": 0.1,
                         "jit_compile": jit},
                  plugins={"enable": ["rec"]})
    run_with_plugins({"rec": recorder}, recipe)
    conv_path = next(p for p in recorder.masks[0] if "conv1" in p)
    fc_path = next(p for p in recorder.masks[0] if "fc" in p)
    # compare the weights at each epoch start with the next epoch start
    for epoch in range(2):
        before, after = recorder.starts[epoch], recorder.starts[epoch + 1]
        moved = np.any(before[conv_path] != after[conv_path], axis=(0, 1, 2))
        mask = recorder.masks[epoch][conv_path].astype(bool)
        assert not np.any(moved & ~mask), "a frozen conv1 channel moved"
        assert np.all(moved[mask]), "a selected conv1 channel did not train"
        np.testing.assert_array_equal(before[fc_path], after[fc_path])
        other = [p for p in before if p not in (conv_path, fc_path) and "classifier" in p]
        assert other and all(np.any(before[p] != after[p]) for p in other)


class TwoScaleModel(keras.Model):
    """y = W x * config[0]: a 'subnet' is the same weights at another output scale."""

    def __init__(self):
        super().__init__()
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(4, use_bias=False, kernel_initializer="ones")

    def call(self, x, training=False, subnet=None):
        y = self.dense(self.flatten(x))
        return y if subnet is None else y * tf.cast(subnet[0], y.dtype)


@pytest.mark.parametrize("scales", [(0.5,), (0.5, 2.0, 0.25)])
def test_subnet_gradients_are_scaled_and_summed_into_one_step(scales):
    model = TwoScaleModel()
    batch = {"image": tf.random.uniform((8, 3, 3, 1), seed=1), "label": tf.constant([0, 1, 2, 3] * 2)}
    model(batch["image"])
    from keras_edge.builtins.inplace_distillation import InplaceDistillation, distillation
    from keras_edge.step import Selection, cross_entropy, make_train_step

    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    plugin = InplaceDistillation()  # the term the built-in plugin adds through loss_terms
    step = make_train_step(model, optimizer, Selection(model, None),
                           lambda batch, outputs, subnet: plugin.loss_terms(outputs=outputs, subnet=subnet) or {})
    w0 = model.dense.kernel.numpy().copy()
    configs = (None, *(tf.constant([scale]) for scale in scales))
    rows = [(0.25 * k, 1.0, 2.0 / k) for k in range(1, len(scales) + 1)]
    weights = tf.constant([[1.0, 1.0, 0.0], *rows])
    step(batch, configs, weights)
    graph = step.get_concrete_function(batch, configs, weights).graph
    assert any("While" in op.type for op in graph.get_operations())  # the later samples run as one loop
    # the same update computed by hand
    kernel = tf.Variable(w0)
    with tf.GradientTape() as tape:
        logits = tf.reshape(batch["image"], (8, -1)) @ kernel
        teacher = tf.stop_gradient(tf.nn.softmax(logits))
        loss = cross_entropy(batch["label"], logits)
        for scale, (grad_scale, ce_weight, distill_weight) in zip(scales, rows):
            small = logits * scale
            loss += grad_scale * (ce_weight * cross_entropy(batch["label"], small)
                                  + distill_weight * distillation(teacher, small))
    expected = w0 - 0.1 * tape.gradient(loss, kernel).numpy()
    np.testing.assert_allclose(model.dense.kernel.numpy(), expected, rtol=1e-5, atol=1e-6)


class Sampler:
    def __init__(self):
        self.calls = 0

    @hookimpl
    def sample_subnets(self, ctx):
        self.calls += 1
        return [SubnetSample(), SubnetSample(grad_scale=0.5, ce_weight=0.0, distill_weight=1.0)]


def test_sample_subnets_fires_every_step():
    sampler = Sampler()
    summary = run_with_plugins({"sampler": sampler})
    # 256 examples, 25% validation -> 192 train -> 6 steps of 32 per epoch, 2 epochs
    assert sampler.calls == 12
    single = run_with_plugins({})
    assert summary["train_macs"] == 2 * single["train_macs"]


class Widen:
    """Doubles the classifier's hidden layer after the first epoch, keeping the function."""

    grew = False

    @hookimpl
    def on_grow(self, ctx, model):
        if ctx.epoch != 0:
            return None
        from keras_edge.models import small_cnn

        wide = small_cnn(model.input_shape[1:], model.output_shape[-1], width=0.5)
        for old, new in zip(model.layers, wide.layers):
            for w_old, w_new in zip(old.weights, new.weights):
                value = np.zeros(w_new.shape, np.float32)
                value[tuple(slice(0, s) for s in w_old.shape)] = w_old.numpy()
                if "moving_variance" in w_new.path or "gamma" in w_new.path:
                    value[tuple(slice(s, None) if i == len(w_old.shape) - 1 else slice(None)
                                for i, s in enumerate(w_old.shape))] = 1.0
                w_new.assign(value)
        self.grew = True
        return wide


def test_on_grow_replaces_the_model_and_training_goes_on(tmp_path):
    widen = Widen()
    summary = run_with_plugins({"widen": widen}, out=tmp_path / "run")
    assert widen.grew
    from keras_edge.models import count_params

    narrow = parse_recipe(tiny())
    assert summary["params"] > count_params(
        keras.saving.load_model(tmp_path / "run" / "checkpoints" / "s00-e0001" / "model.keras")) // 2
    saved = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert saved.get_layer("conv1").kernel.shape[-1] == 16 and narrow.model.width == 0.25


class Views:
    @hookimpl
    def augment_batch(self, batch):
        return {**batch, "views": [1.0 - batch["image"]]}

    @hookimpl
    def loss_terms(self, outputs):
        assert len(outputs["view_logits"]) == 1
        diff = outputs["logits"] - outputs["view_logits"][0]
        return {"consistency": 0.01 * tf.reduce_mean(diff ** 2)}


def test_augment_batch_views_reach_loss_terms(tmp_path):
    run_with_plugins({"views": Views()}, out=tmp_path / "run")
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "consistency" in header.split(",")


class BlowUp:
    @hookimpl
    def loss_terms(self, ctx):
        return {"bad": tf.where(ctx.optimizer.iterations >= 8, np.inf, 0.0)}


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path):
    with pytest.raises(TrainingError, match=r"epoch 2, step 9 \(global step 9\); the last good checkpoint"):
        run_with_plugins({"blow": BlowUp()}, out=tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "s00-e0000" / "model.keras").exists()
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "failed" and "NaN" in status["reason"]


class Raises:
    @hookimpl
    def on_epoch_end(self, ctx):
        if ctx.epoch == 1:
            raise ValueError("boom")


def test_plugin_error_names_plugin_and_hook_and_keeps_checkpoint(tmp_path):
    with pytest.raises(PluginError, match="plugin 'raiser' failed in hook 'on_epoch_end': ValueError: boom"):
        run_with_plugins({"raiser": Raises()}, out=tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "s00-e0000").is_dir()
    assert not (tmp_path / "run" / "model.keras").exists()


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    recipe = tiny(train={"epochs": 3})
    with pytest.raises(PluginError):
        run_with_plugins({"raiser": Raises()}, tiny(train={"epochs": 3}, plugins={"enable": ["raiser"]}), out=out)
    summary = run_recipe(parse_recipe(tiny(train={"epochs": 3}, plugins={"enable": ["raiser"]}),
                                      catalog={"raiser": None}),
                         out, resume=True, extra_plugins={"raiser": Passive()})
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == ["1", "2", "3"]
    assert summary["epochs"] == 3 and recipe


class Passive:
    """Same name as the failed plugin, without the failure."""


def test_mismatched_resume_is_refused(tmp_path):
    from keras_edge.errors import KerasEdgeError

    run_with_plugins({}, out=tmp_path / "run")
    with pytest.raises(KerasEdgeError, match="differs from"):
        run_recipe(parse_recipe(tiny(train={"epochs": 5})), tmp_path / "run", resume=True)
    with pytest.raises(KerasEdgeError, match="is not empty; pass --resume"):
        run_recipe(parse_recipe(tiny()), tmp_path / "run")


def test_fine_tuning_after_a_cached_stage_is_bit_identical(cache_dir):
    recipe = tiny(train={"deterministic": True},
                  stages=[{"name": "pre", "epochs": 1, "cache": True},
                          {"name": "fine", "epochs": 1, "data": {"classes": [0, 1]}}])
    results = []
    for _ in range(3):  # the first run trains and caches "pre"; the others load it
        trainer = Trainer(parse_recipe(recipe), get_plugin_manager())
        trainer.run()
        results.append([v.numpy() for v in trainer.ctx.model.weights])
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other, strict=True))


def test_new_classifier_when_a_stage_changes_the_class_count(cache_dir):
    recipe = tiny(stages=[{"name": "pre", "epochs": 1, "cache": True},
                          {"name": "fine", "epochs": 1, "data": {"classes": [0, 1]}}])
    summary = run_recipe(parse_recipe(recipe))
    assert set(summary["stages"]) == {"pre", "fine"}
    again = run_recipe(parse_recipe(recipe))
    assert again["stages"]["pre"]["cached"] is True
    assert again["stages"]["pre"]["test_accuracy"] == summary["stages"]["pre"]["test_accuracy"]
