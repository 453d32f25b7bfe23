"""The example third-party plugins (examples/*-plugin, installed by the README's test
command) use only the documented contract, and each has its effect; plus Keras callbacks."""

import json

import keras
import numpy as np
import tensorflow as tf

from keras_edge import hookimpl
from keras_edge.evaluation import evaluate_run
from keras_edge.recipe import parse_recipe
from keras_edge.runner import run_recipe
from keras_edge.step import cross_entropy
from keras_edge.testing import run_with_plugins, tiny_recipe

import keras_edge_mixup  # installed by the README's test command, as a user would


def metrics(run_dir):
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


class TargetCrossEntropy:
    """Adds the cross-entropy against the batch's target as a term: if the loop's own
    cross-entropy used the target too, the logged loss is exactly twice this term."""

    @hookimpl
    def loss_terms(self, batch, outputs):
        return {"target_ce": cross_entropy(batch["label"], outputs["logits"], targets=batch["target"])}


def test_mixup_targets_reach_the_loss_exactly(tmp_path):
    recipe = tiny_recipe(train={"epochs": 1}, plugins={"enable": ["mixup"], "mixup": {"alpha": 1.0}})
    run_with_plugins({"spy": TargetCrossEntropy()}, recipe, out=tmp_path / "run")
    row = metrics(tmp_path / "run")[0]
    np.testing.assert_allclose(float(row["loss"]), 2 * float(row["target_ce"]), rtol=1e-5)


def test_mixup_mixes_images_and_targets_with_one_weight_and_order():
    images = tf.random.uniform((8, 4, 4, 1), seed=3)
    batch = {"image": images, "label": tf.range(8) % 4, "seed": tf.constant([5, 6], tf.int64)}
    mixed, weight, order = keras_edge_mixup.mix(batch, 4, 0.4)
    expected = weight * images + (1 - weight) * tf.gather(images, order)
    np.testing.assert_allclose(mixed["image"], expected, rtol=1e-6)
    np.testing.assert_allclose(tf.reduce_sum(mixed["target"], -1), np.ones(8), rtol=1e-6)
    assert 0 < float(weight) < 1 and sorted(order.numpy()) == list(range(8))


def test_ema_accuracy_is_the_accuracy_of_the_ema_weights(tmp_path):
    recipe = tiny_recipe(train={"epochs": 2}, plugins={"enable": ["ema"], "ema": {"decay": 0.9}})
    out = tmp_path / "run"
    summary = run_recipe(parse_recipe(recipe), out)
    shipped = keras.saving.load_model(out / "model.keras", compile=False)
    checkpoint = sorted((out / "checkpoints").iterdir())[-1]
    training = keras.saving.load_model(checkpoint / "model.keras", compile=False)
    assert any(not np.allclose(a, b) for a, b in zip(shipped.get_weights(), training.get_weights()))
    assert evaluate_run(out)["accuracy"] == summary["test_accuracy"]


class Watch:
    """The trainable weights at the start and end of the (only) epoch."""

    def __init__(self):
        self.before, self.after = {}, {}

    @hookimpl
    def on_epoch_start(self, ctx):
        self.before = {v.path: v.numpy().copy() for v in ctx.model.trainable_variables}

    @hookimpl
    def on_epoch_end(self, ctx):
        self.after = {v.path: v.numpy().copy() for v in ctx.model.trainable_variables}

    def moved(self, path):
        return float(np.abs(self.after[path] - self.before[path]).mean())


def test_layerwise_rates_move_early_layers_less():
    watches = {}
    for name, enable in (("plain", []), ("layerwise", ["layerwise_lr"])):
        watches[name] = Watch()
        recipe = tiny_recipe(train={"epochs": 1}, plugins={"enable": enable, "layerwise_lr": {"decay": 0.1}})
        run_with_plugins({"watch": watches[name]}, recipe)
    paths = [p for p in watches["plain"].before if p.endswith("kernel")]
    first, last = paths[0], paths[-1]
    assert watches["layerwise"].moved(first) < 0.2 * watches["plain"].moved(first)
    assert watches["layerwise"].moved(last) > 0.5 * watches["plain"].moved(last)


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", self.model.optimizer is not None))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, "val_loss" in logs))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", "test_accuracy" in logs))


def test_a_custom_keras_callback_runs_in_the_loop():
    recorder = Recorder()
    run_recipe(parse_recipe(tiny_recipe(train={"epochs": 2})), callbacks=[recorder])
    assert recorder.calls == [("train_begin", True), ("epoch_end", 0, True), ("epoch_end", 1, True),
                              ("train_end", True)]


def test_reduce_lr_on_plateau_named_in_a_recipe_lowers_the_rate(tmp_path):
    table = {"name": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5, "patience": 0, "min_delta": 1e9}
    recipe = tiny_recipe(train={"epochs": 3}, plugins={"keras_callbacks": {"callbacks": [table]}})
    run_recipe(parse_recipe(recipe), tmp_path / "run")
    rates = [float(row["learning_rate"]) for row in metrics(tmp_path / "run")]
    np.testing.assert_allclose(rates, [0.05, 0.05, 0.025], rtol=1e-6)  # epoch 2 does not improve: halved for 3
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "finished"
