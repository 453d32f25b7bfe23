#!/usr/bin/env python3
"""Benchmark on-device training: builtin-only LiteRT export versus TensorFlow and the
official Flex-based pattern, for MobileNetV2 (keras_edge.models) on Fashion-MNIST.

    python tools/bench_tflite.py --out runs/bench_tflite

Measured side by side in one run (one thread each, median of --steps steps):
train-step latency and images/s in TensorFlow (Keras model, GradientTape, SGD with
momentum) and in ai_edge_litert (the exported ``train`` signature); peak memory of a
fresh process that trains full versus with a 10% parameter budget (two selections:
random neurons over all layers, as NEq spreads them, and the last layers, as Sparse
Update picks them); model file sizes; whether the official pattern (needs Flex) runs.
Writes bench_tflite.json and bench_tflite.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def status_kib(field) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS: now, VmHWM: peak).
    (``ru_maxrss`` is not used: Linux carries the parent's peak across fork and exec.)"""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def child_memory(model_path, data_path, steps):
    """Run in a fresh process: train ``steps`` steps in LiteRT and report memory (KiB)."""
    from ai_edge_litert.interpreter import Interpreter

    with np.load(data_path) as f:
        x, y = f["x"], f["y"]
    before = status_kib("VmRSS")
    interpreter = Interpreter(model_path=model_path, num_threads=1)
    train = interpreter.get_signature_runner("train")
    weight, rate = np.ones(x.shape[1], np.float32), np.float32(0)
    for step in range(steps):
        train(x=x[step % len(x)], y=y[step % len(y)], sample_weight=weight, learning_rate=rate)
    peak = status_kib("VmHWM")
    print(json.dumps({"baseline_rss_kib": before, "peak_rss_kib": peak, "training_kib": peak - before}))


def budget_selection(model, fraction, strategy, seed=0):
    """0/1 masks per output channel keeping at most ``fraction`` of the trainable parameters.

    ``random``: neurons of every weighted layer in random order; ``last``: neurons from
    the classifier backwards. Batch-norm parameters stay frozen.
    """
    import keras

    weighted = [layer for layer in model.layers
                if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense))]
    neurons = []  # (layer, channel, parameters)
    for layer in weighted:
        per_neuron = sum(int(np.prod(v.shape)) for v in layer.trainable_weights) // _outputs(layer)
        neurons += [(layer, c, per_neuron) for c in range(_outputs(layer))]
    if strategy == "random":
        order = np.random.default_rng(seed).permutation(len(neurons))
    else:
        order = np.arange(len(neurons))[::-1]
    limit = fraction * sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    masks = {v.path: np.zeros(_outputs(layer), np.float32) for layer in weighted for v in layer.trainable_weights}
    used = 0
    for i in order:
        layer, channel, cost = neurons[i]
        if used + cost > limit:
            continue
        used += cost
        for v in layer.trainable_weights:
            masks[v.path][channel] = 1.0
    return masks, used


def _outputs(layer):
    kernel = layer.kernel.shape
    return kernel[-1] * kernel[-2] if len(kernel) == 4 and layer.__class__.__name__ == "DepthwiseConv2D" else kernel[-1]


def official_module(model, batch, lr, momentum):
    """The TFLite on-device training guide's pattern, on a Keras 3 model: TensorFlow's
    own gradients, and save/restore with tf.raw_ops (needs the Flex delegate)."""
    import tensorflow as tf

    class Official(tf.Module):
        def __init__(self):
            self.model = model
            self.velocity = [tf.Variable(tf.zeros(v.shape)) for v in model.trainable_variables]

        @tf.function(input_signature=[tf.TensorSpec([batch, *model.input_shape[1:]], tf.float32, name="x"),
                                      tf.TensorSpec([batch], tf.int32, name="y")])
        def train(self, x, y):
            with tf.GradientTape() as tape:
                logits = self.model(x, training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
            grads = tape.gradient(loss, self.model.trainable_variables)
            for v, g, m in zip(self.model.trainable_variables, grads, self.velocity):
                m.assign(momentum * m - lr * g)
                v.assign_add(m)
            return {"loss": loss}

        @tf.function(input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name="x")])
        def infer(self, x):
            return {"logits": self.model(x, training=False)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="checkpoint_path")])
        def save(self, checkpoint_path):
            names = [v.path for v in self.model.weights]
            tf.raw_ops.Save(filename=checkpoint_path, tensor_names=names,
                            data=[tf.convert_to_tensor(v) for v in self.model.weights], name="save")
            return {"checkpoint_path": checkpoint_path}

    return Official()


def convert_official(module):
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(module, saved, signatures={"train": module.train.get_concrete_function(),
                                                       "infer": module.infer.get_concrete_function(),
                                                       "save": module.save.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        converter.experimental_enable_resource_variables = True
        return converter.convert()


def median_ms(fns, batches, steps, warmup=3):
    """Median milliseconds per call of each function, timed round-robin (one step of
    each in turn) so that all see the same machine load."""
    for i in range(warmup):
        for fn in fns.values():
            fn(*batches[i % len(batches)])
    times = {name: [] for name in fns}
    for i in range(steps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(*batches[i % len(batches)])
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_tflite", help="output folder")
    parser.add_argument("--width", type=float, default=0.35, help="MobileNetV2 width multiplier")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--budget", type=float, default=0.10, help="fraction of parameters trained on the budget")
    parser.add_argument("--child-memory", nargs=3, metavar=("MODEL", "DATA", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_memory:
        return child_memory(args.child_memory[0], args.child_memory[1], int(args.child_memory[2]))

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from keras_edge.data import load_data, to_float
    from keras_edge.export.convert import flex_ops, to_tflite
    from keras_edge.export.trainer_module import TrainerModule
    from keras_edge.models import build_model
    from keras_edge.recipe import parse_recipe

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = parse_recipe({"data": {"name": "fashion_mnist", "limit": 2048, "test_limit": 512},
                           "model": {"name": "mobilenet_v2", "width": args.width}})
    data = load_data(recipe.data)
    b = args.batch_size
    x = to_float(data.x_train[: 8 * b]).reshape(8, b, *data.input_shape)
    y = data.y_train[: 8 * b].astype(np.int32).reshape(8, b)
    batches = list(zip(x, y))
    np.savez(out / "batches.npz", x=x, y=y)
    lr, momentum = 0.01, 0.9
    keras.utils.set_random_seed(0)
    model = build_model(recipe.model, data.input_shape, data.num_classes)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    results = {"model": f"mobilenet_v2 width {args.width}", "trainable_parameters": trainable,
               "batch_size": b, "steps": args.steps, "threads": 1, "dataset": "fashion_mnist"}

    official = official_module(model, b, lr, momentum)
    steps = {"tensorflow": lambda x, y: official.train(x, y)}
    variants = {"full": None}
    for strategy in ("random", "last"):
        masks, used = budget_selection(model, args.budget, strategy)
        variants[f"budget_{strategy}"] = masks
        results[f"budget_{strategy}_parameters"] = used
    for name, selection in variants.items():
        start = time.perf_counter()
        tflite = to_tflite(TrainerModule(model, batch_size=b, learning_rate=lr, momentum=momentum, selection=selection))
        path = out / f"mobilenet_v2_{name}.tflite"
        path.write_bytes(tflite)
        child = subprocess.run([sys.executable, __file__, "--child-memory", str(path), str(out / "batches.npz"),
                                str(args.steps)], capture_output=True, text=True, check=True)
        results[f"litert_{name}"] = {"file_bytes": len(tflite), "flex_ops": sorted(flex_ops(tflite)),
                                     "convert_s": time.perf_counter() - start,
                                     "memory": json.loads(child.stdout.strip().splitlines()[-1])}
        runner = Interpreter(model_content=tflite, num_threads=1).get_signature_runner("train")
        weight, rate = np.ones(b, np.float32), np.float32(0)
        steps[f"litert_{name}"] = lambda x, y, runner=runner: runner(x=x, y=y, sample_weight=weight, learning_rate=rate)
    for name, ms in median_ms(steps, batches, args.steps).items():
        results.setdefault(name, {}).update(train_step_ms=ms, images_per_s=b * 1000 / ms)
    full_mem = results["litert_full"]["memory"]
    for strategy in ("random", "last"):
        mem = results[f"litert_budget_{strategy}"]["memory"]
        results[f"budget_{strategy}_vs_full"] = {
            "peak_rss_ratio": mem["peak_rss_kib"] / full_mem["peak_rss_kib"],
            "training_memory_ratio": mem["training_kib"] / full_mem["training_kib"],
            "train_step_ratio": results[f"litert_budget_{strategy}"]["train_step_ms"] / results["litert_full"]["train_step_ms"],
        }
    results["litert_full_vs_tensorflow_step_ratio"] = (results["litert_full"]["train_step_ms"]
                                                       / results["tensorflow"]["train_step_ms"])

    try:
        flex_model = convert_official(official)
        (out / "mobilenet_v2_official_flex.tflite").write_bytes(flex_model)
        entry = {"file_bytes": len(flex_model), "flex_ops": sorted(flex_ops(flex_model))}
        try:
            train = Interpreter(model_content=flex_model, num_threads=1).get_signature_runner("train")
            ms = median_ms({"flex": lambda x, y: train(x=x, y=y)}, batches, args.steps)["flex"]
            entry.update(train_step_ms=ms, runs_in_ai_edge_litert=True)
        except Exception as exc:  # the stock runtime has no Flex delegate
            entry.update(runs_in_ai_edge_litert=False, error=str(exc).strip().splitlines()[0][:300])
    except Exception as exc:
        entry = {"converts": False, "error": str(exc).strip().splitlines()[0][:300]}
    results["official_flex"] = entry
    results["targets"] = {
        "no_flex_ops": all(not results[f"litert_{n}"]["flex_ops"] for n in variants),
        "budget_memory_at_most_0.4x_full": {
            f"{strategy} {measure}": results[f"budget_{strategy}_vs_full"][measure] <= 0.4
            for strategy in ("random", "last") for measure in ("peak_rss_ratio", "training_memory_ratio")},
    }

    (out / "bench_tflite.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out / "bench_tflite.png")
    print(json.dumps(results, indent=2))


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["litert_full", "litert_budget_random", "litert_budget_last"]
    labels = ["LiteRT full", "LiteRT 10% random", "LiteRT 10% last layers"]
    fig, (a, m) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.bar(["TensorFlow"] + labels, [results["tensorflow"]["train_step_ms"]] + [results[n]["train_step_ms"] for n in names])
    a.set_ylabel("train step (ms, median)")
    m.bar(labels, [results[n]["memory"]["training_kib"] / 1024 for n in names], label="training increment")
    m.bar(labels, [results[n]["memory"]["baseline_rss_kib"] / 1024 for n in names],
          bottom=[results[n]["memory"]["training_kib"] / 1024 for n in names], alpha=0.4, label="runtime baseline")
    m.set_ylabel("peak RSS (MiB)")
    m.legend()
    for ax in (a, m):
        ax.tick_params(axis="x", labelrotation=20)
    fig.suptitle(f"{results['model']}, batch {results['batch_size']}, Fashion-MNIST, 1 thread")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
