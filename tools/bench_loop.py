"""Benchmark: the keras-edge loop (no plugins) against Keras ``model.fit``.

Same model, data (Fashion-MNIST), batch size, optimizer and validation split, with
each tool's default XLA setting. The two are interleaved epoch by epoch in one
process: after each keras-edge epoch, a plugin runs one ``fit`` epoch, so every pair
of epochs sees the same machine load (shared machines drift by 1.5x within
seconds). The first pair (tracing) is not timed. Prints the median of the per-pair
throughput ratios (keras-edge / fit; above 1 means keras-edge is faster) and the ratio
of the fastest epochs (the least disturbed by other load), and the ratio of CPU seconds
per epoch (the work done, which a CPU quota that throttles a shared machine cannot
stretch), and writes JSON.

    python tools/bench_loop.py --out bench_results/loop.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_edge import hookimpl  # noqa: E402
from keras_edge.models import build_model  # noqa: E402
from keras_edge.recipe import parse_recipe  # noqa: E402
from keras_edge.runner import run_recipe  # noqa: E402


def clocks():
    return time.perf_counter(), time.process_time()


def since(start):
    """``(wall seconds, CPU seconds)`` since ``start = clocks()``."""
    return tuple(now - then for now, then in zip(clocks(), start))


class Interleaver:
    """Times each keras-edge epoch (training plus validation), then one ``fit`` epoch."""

    def __init__(self, recipe):
        self.recipe = recipe
        self.times = {"keras_edge": [], "fit": []}
        self._start, self._fit = None, None

    @hookimpl
    def on_epoch_start(self):
        self._start = clocks()

    @hookimpl
    def on_epoch_end(self, ctx):
        self.times["keras_edge"].append(since(self._start))
        if self._fit is None:
            self._fit = FitRun(self.recipe, ctx.data)
        self.times["fit"].append(self._fit.epoch())
        print(f"epoch {len(self.times['fit'])}: " + ", ".join(
            f"{mode} {t[-1][0]:.2f}s ({t[-1][1]:.2f} CPU s)" for mode, t in self.times.items()), flush=True)


class FitRun:
    """The same model and data under ``model.fit``, one epoch per call."""

    def __init__(self, recipe, data):
        stage = recipe.stages[0]
        keras.utils.set_random_seed(stage.train.seed)
        self.model = build_model(recipe.model, data.input_shape, data.num_classes)
        self.model.compile(optimizer=keras.optimizers.Adam(stage.train.learning_rate),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           metrics=["accuracy"])
        self.data, self.stage, self.epochs = data, stage, 0

    def epoch(self) -> tuple:
        as_pairs = lambda batch: (batch["image"], batch["label"])  # noqa: E731
        train = self.data.train_dataset(self.stage.data.batch_size, self.stage.train.seed, self.epochs)
        val = self.data.eval_dataset("val", 512).map(as_pairs)
        start = clocks()
        self.model.fit(train.map(as_pairs), validation_data=val, epochs=1, verbose=0)
        self.epochs += 1
        return since(start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--examples", type=int, default=12000, help="training examples per epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=11, help="pairs of epochs; the first is not timed")
    parser.add_argument("--out", type=Path, default=Path("bench_results/loop.json"))
    args = parser.parse_args()
    raw = {"data": {"name": "fashion_mnist", "limit": args.examples, "batch_size": args.batch_size,
                    "validation_fraction": 0.05},
           "model": {"name": args.model}, "train": {"epochs": args.epochs, "optimizer": "adam"},
           "plugins": {"enable": ["interleave"]}}
    recipe = parse_recipe(raw, source="bench", catalog={"interleave": None})
    timer = Interleaver(recipe)
    run_recipe(recipe, extra_plugins={"interleave": timer})
    wall = {mode: [w for w, _ in t[1:]] for mode, t in timer.times.items()}
    cpu = {mode: [c for _, c in t[1:]] for mode, t in timer.times.items()}
    edge, fit = wall["keras_edge"], wall["fit"]
    images = int(args.examples * 0.95) // args.batch_size * args.batch_size
    pair_ratios = [f / e for e, f in zip(edge, fit)]
    result = {"model": args.model, "examples": args.examples, "batch_size": args.batch_size,
              "epoch_times_s": wall, "epoch_cpu_s": cpu,
              "median_images_per_s": {mode: images / statistics.median(t) for mode, t in wall.items()},
              "pair_ratios": pair_ratios, "throughput_ratio": statistics.median(pair_ratios),
              "fastest_epoch_ratio": min(fit) / min(edge),
              "cpu_ratio": statistics.median(cpu["fit"]) / statistics.median(cpu["keras_edge"]),
              "machine": platform.machine(), "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%d %H:%M")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for mode, value in result["median_images_per_s"].items():
        print(f"{mode:10s} {value:8.0f} images/s (median over {len(edge)} epochs)")
    print(f"throughput ratio keras-edge/fit: {result['throughput_ratio']:.3f} (median of {len(edge)} "
          f"adjacent pairs; range {min(pair_ratios):.2f}-{max(pair_ratios):.2f})")
    print(f"fastest epochs: keras-edge {min(edge):.2f}s, fit {min(fit):.2f}s, "
          f"ratio {result['fastest_epoch_ratio']:.3f}")
    print(f"median CPU seconds per epoch: keras-edge {statistics.median(cpu['keras_edge']):.2f}, "
          f"fit {statistics.median(cpu['fit']):.2f}, ratio {result['cpu_ratio']:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
