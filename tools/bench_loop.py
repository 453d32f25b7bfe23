"""Benchmark: the keras-edge loop (no plugins) against Keras ``model.fit``.

Same model, data (Fashion-MNIST), batch size, optimizer and validation split, run
interleaved in one process. The first epoch of each run (tracing) is not timed.
Prints the throughput ratio (keras-edge / fit; above 1 means keras-edge is faster)
and writes JSON.

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
from keras_edge.data import load_data  # noqa: E402
from keras_edge.models import build_model  # noqa: E402
from keras_edge.recipe import parse_recipe  # noqa: E402
from keras_edge.runner import run_recipe  # noqa: E402


class EpochTimer:
    """Times each epoch of the keras-edge loop (training plus validation)."""

    def __init__(self):
        self.times, self._start = [], 0.0

    @hookimpl
    def on_epoch_start(self):
        self._start = time.perf_counter()

    @hookimpl
    def on_epoch_end(self):
        self.times.append(time.perf_counter() - self._start)


class FitTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times, self._start = [], 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def run_edge(raw: dict) -> list[float]:
    timer = EpochTimer()
    recipe = parse_recipe(raw, source="bench", catalog={"timer": None})
    run_recipe(recipe, extra_plugins={"timer": timer})
    return timer.times


def run_fit(raw: dict, jit_compile) -> list[float]:
    recipe = parse_recipe(raw, source="bench", catalog={"timer": None})
    stage = recipe.stages[0]
    data = load_data(stage.data)
    keras.utils.set_random_seed(stage.train.seed)
    model = build_model(recipe.model, data.input_shape, data.num_classes)
    model.compile(optimizer=keras.optimizers.Adam(stage.train.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=jit_compile)
    timer = FitTimer()
    as_pairs = lambda batch: (batch["image"], batch["label"])  # noqa: E731
    train = data.train_dataset(stage.data.batch_size, stage.train.seed).map(as_pairs)
    val = data.eval_dataset("val", 512).map(as_pairs)
    model.fit(train, validation_data=val, epochs=stage.train.epochs, verbose=0, callbacks=[timer])
    return timer.times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--examples", type=int, default=20000, help="training examples per epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is not timed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench_results/loop.json"))
    args = parser.parse_args()
    raw = {"data": {"name": "fashion_mnist", "limit": args.examples, "batch_size": args.batch_size,
                    "validation_fraction": 0.05},
           "model": {"name": args.model}, "train": {"epochs": args.epochs, "optimizer": "adam"},
           "plugins": {"enable": ["timer"]}}
    steps = int(args.examples * 0.95) // args.batch_size
    modes = {"keras_edge": lambda: run_edge(raw),
             "fit_xla_off": lambda: run_fit(raw, False),
             "fit_default": lambda: run_fit(raw, "auto")}
    epoch_times = {m: [] for m in modes}
    for r in range(args.rounds):
        order = list(modes) if r % 2 == 0 else list(reversed(modes))
        for mode in order:
            times = modes[mode]()[1:]
            epoch_times[mode] += times
            print(f"round {r + 1} {mode}: {', '.join(f'{t:.2f}s' for t in times)} per epoch", flush=True)
    images_per_s = {m: steps * args.batch_size / statistics.median(t) for m, t in epoch_times.items()}
    ratios = {f"keras_edge/{m}": images_per_s["keras_edge"] / images_per_s[m] for m in modes if m != "keras_edge"}
    result = {"model": args.model, "examples": args.examples, "batch_size": args.batch_size,
              "epoch_times_s": epoch_times, "median_images_per_s": images_per_s, "throughput_ratios": ratios,
              "machine": platform.machine(), "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%d %H:%M")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for mode, value in images_per_s.items():
        print(f"{mode:12s} {value:8.0f} images/s (median over {len(epoch_times[mode])} epochs)")
    for name, ratio in ratios.items():
        print(f"throughput ratio {name}: {ratio:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
