"""Benchmark GEARnn against its baselines on Fashion-MNIST, side by side in one process.

Runs recipes/gearnn_2phase.toml, gearnn_1phase.toml, growth_mshot.toml and
augmix_baseline.toml and reports wall time, training MACs, final weights, clean test
accuracy and mean accuracy under the 15 corruptions x 5 severities, with each
recipe's training-time ratio to the AugMix baseline (baseline time / recipe time).
It also measures the cost per batch of ERA and AugMix augmentation against none.

    python tools/bench_gearnn.py --limit 6000
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_EDGE_PLUGINS", "osg,era,corruptions")  # only what is measured

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPES = ("augmix_baseline", "gearnn_2phase", "gearnn_1phase", "growth_mshot")
BASELINE = "augmix_baseline"


def augmentation_cost(images, batch_size=128, batches=15) -> dict:
    """Median seconds per batch of the tf.data pipeline with no augmentation, ERA and AugMix."""
    import tensorflow as tf

    from keras_edge_gearnn.augmix import augment_and_mix

    settings = {"none": None, "era (1,3,4)": (1, 3, 4), "augmix (3,3,3)": (3, 3, 3)}
    result = {}
    for name, wdj in settings.items():
        ds = tf.data.Dataset.from_tensor_slices(images).batch(batch_size, drop_remainder=True)
        ds = ds.map(lambda x: tf.cast(x, tf.float32) / 255.0)
        if wdj is not None:
            w, d, j = wdj
            ds = ds.map(lambda x, w=w, d=d, j=j: (x, augment_and_mix(x, [0, 1], w, d, views=j - 1)))
        it = iter(ds.repeat())
        next(it)  # trace and warm up
        times = []
        for _ in range(batches):
            start = time.perf_counter()
            next(it)
            times.append(time.perf_counter() - start)
        result[name] = statistics.median(times)
    return {"seconds_per_batch": result, "batch_size": batch_size,
            "ratio_to_none": {k: v / result["none"] for k, v in result.items()}}


def run_one(name: str, limit: int, corruption_examples: int, runs_dir: pathlib.Path) -> dict:
    from keras_edge.recipe import load_recipe
    from keras_edge.runner import run_recipe

    overrides = [f"plugins.corruptions.examples={corruption_examples}"]
    if limit:
        overrides.append(f"data.limit={limit}")
    recipe = load_recipe(ROOT / "recipes" / f"{name}.toml", overrides=overrides)
    summary = run_recipe(recipe, runs_dir / name, force=True)
    return {
        "wall_time_s": summary["wall_time_s"],
        "train_macs": summary["train_macs"],
        "params": summary["params"],
        "test_accuracy": summary["test_accuracy"],
        "corruption_subset_clean_accuracy": summary["corruptions"]["clean_accuracy"],
        "mean_corruption_accuracy": summary["corruptions"]["mean_corruption_accuracy"],
        "stage_times_s": summary["stage_times_s"],
        "run_dir": summary["run_dir"],
    }


def plot(results: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in results.items():
        ax.scatter(r["wall_time_s"] / 60, 100 * r["test_accuracy"], marker="o", color="C0")
        ax.scatter(r["wall_time_s"] / 60, 100 * r["mean_corruption_accuracy"], marker="s", color="C1")
        ax.annotate(name, (r["wall_time_s"] / 60, 100 * r["mean_corruption_accuracy"]), fontsize=7,
                    xytext=(3, -10), textcoords="offset points")
    ax.scatter([], [], marker="o", color="C0", label="clean test accuracy")
    ax.scatter([], [], marker="s", color="C1", label="mean corruption accuracy")
    ax.set_xlabel("training wall time (min)")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("GEARnn vs AugMix baseline, Fashion-MNIST", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=6000, help="training examples (0: all 54,000)")
    parser.add_argument("--corruption-examples", type=int, default=1000, help="test examples corrupted")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--out", default="bench_results/gearnn", help="folder for JSON, PNG and run folders")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from keras_edge.data import load_data
    from keras_edge.recipe import load_recipe

    data = load_data(load_recipe(ROOT / "recipes" / "gearnn_2phase.toml").data)
    augmentation = augmentation_cost(data.x_train[:128 * 16])
    print("augmentation, median s/batch of 128:", json.dumps(augmentation["seconds_per_batch"]))

    results = {}
    for name in args.recipes:
        results[name] = run_one(name, args.limit, args.corruption_examples, out / "runs")
        print(f"{name}: {json.dumps({k: v for k, v in results[name].items() if k != 'run_dir'})}", flush=True)
    if BASELINE in results:
        for r in results.values():
            r["time_ratio_vs_baseline"] = results[BASELINE]["wall_time_s"] / r["wall_time_s"]
            r["train_macs_ratio_vs_baseline"] = results[BASELINE]["train_macs"] / r["train_macs"]

    header = f"{'recipe':16s}{'time s':>9s}{'x faster':>9s}{'train GMACs':>13s}{'params':>9s}{'clean %':>9s}{'corrupt %':>10s}"
    print(header)
    for name, r in results.items():
        print(f"{name:16s}{r['wall_time_s']:9.0f}{r.get('time_ratio_vs_baseline', float('nan')):9.2f}"
              f"{r['train_macs'] / 1e9:13.0f}{r['params']:9d}{100 * r['test_accuracy']:9.2f}"
              f"{100 * r['mean_corruption_accuracy']:10.2f}")
    report = {"limit": args.limit, "corruption_examples": args.corruption_examples,
              "augmentation": augmentation, "results": results,
              "command": "python tools/bench_gearnn.py " + " ".join(
                  f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(args).items())}
    (out / "bench_gearnn.json").write_text(json.dumps(report, indent=2))
    plot(results, out / "bench_gearnn.png")
    print(f"wrote {out / 'bench_gearnn.json'} and {out / 'bench_gearnn.png'}")


if __name__ == "__main__":
    main()
