"""Benchmark DεpS against BigNAS and OFA once-for-all training, side by side on Fashion-MNIST.

Trains recipes/deps.toml, bignas.toml and ofa.toml with their epochs scaled by one factor
(keeping the papers' 270 : 400 : 605 epoch ratios), evaluates each supernet's subnets
(``evaluate --subnets``: BatchNorm recalibration, MACs, test accuracy, Pareto front), and
measures the train-step time of the smallest and the largest subnet against their MACs.
Prints a table of ratios and writes OUT/bench_deps.json and OUT/pareto.png.

    python tools/bench_deps.py --deps-epochs 4 --limit 4000 --out runs/bench_deps
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

RECIPES = ("deps", "bignas", "ofa")
# A supernet small enough for a shared 2-core CPU: two stages, depths {2,3,4}, kernels {3,5,7}, expands {3,4,6}.
MODEL = {"stage_widths": [24, 40], "stage_strides": [2, 2], "stage_activations": ["relu", "hard_swish"],
         "head_width": 128}


def scaled_recipe(name: str, factor: float, args):
    """The recipe with every stage's epochs × ``factor`` (at least 1), on the benchmark's data and model.

    OFA's two short sub-phases (depth_a, expand_a: 25 of 605 epochs each) are dropped when
    scaling leaves them under one epoch; their share goes to the following sub-phase.
    """
    import tomllib

    from keras_edge.recipe import parse_recipe

    raw = tomllib.loads(Path(f"recipes/{name}.toml").read_text())
    raw["data"].update(limit=args.limit, test_limit=args.test_limit)
    raw["model"]["options"] = MODEL
    plugins = raw.setdefault("plugins", {})
    plugins["supernet"] = {"num_samples": args.num_samples, "eval_limit": args.test_limit}
    if "deps" in plugins:  # the ε ramp is a share of the training too
        plugins["deps"]["epsilon_epochs"] = plugins["deps"]["epsilon_epochs"] * factor
    if "stages" in raw:
        stages, carry = [], 0.0
        for stage in raw["stages"]:
            epochs = stage["epochs"] * factor + carry
            if epochs < 1 and stage["name"].endswith("_a"):
                carry = epochs
                continue
            stage["epochs"], carry = max(1, round(epochs)), 0.0
            stage["cache"] = False
            stages.append(stage)
        raw["stages"] = stages
    else:
        raw["train"]["epochs"] = max(1, round(raw["train"]["epochs"] * factor))
    return parse_recipe(raw, source=f"recipes/{name}.toml (scaled x{factor:.3f})")


def step_time_ratio(args) -> dict:
    """Median train-step time of the smallest and largest subnet (same compiled step) vs their MACs."""
    import keras
    import tensorflow as tf

    from keras_edge.step import Selection, make_train_step
    from keras_edge_deps.supernet import ElasticMobileNet

    model = ElasticMobileNet((28, 28, 1), 10, **MODEL)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, optimizer, Selection(model, None), lambda *a: {})
    rng = np.random.default_rng(0)
    batch = {"image": tf.constant(rng.random((128, 28, 28, 1), np.float32)),
             "label": tf.constant(rng.integers(0, 10, 128), tf.int32)}
    weights = tf.constant([[1.0, 1.0, 0.0]])
    configs = {"smallest": model.space.smallest(), "largest": model.space.largest()}
    times = {name: [] for name in configs}
    for repeat in range(args.step_repeats + 2):  # interleaved; the first two rounds warm up
        for name, config in configs.items():
            start = time.perf_counter()
            float(step(batch, (tf.constant(config),), weights)["loss"])
            if repeat >= 2:
                times[name].append(time.perf_counter() - start)
    median = {name: float(np.median(t)) for name, t in times.items()}
    macs = {name: model.subnet_macs(c) for name, c in configs.items()}
    return {"median_step_s": median, "macs": macs, "traces": int(step.experimental_get_tracing_count()),
            "time_ratio_smallest_over_largest": median["smallest"] / median["largest"],
            "macs_ratio_smallest_over_largest": macs["smallest"] / macs["largest"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deps-epochs", type=int, default=4, help="DεpS epochs (recipes: 30); others scaled alike")
    parser.add_argument("--limit", type=int, default=4000, help="training examples (0: all 60,000)")
    parser.add_argument("--test-limit", type=int, default=2000, help="test examples for subnet accuracy")
    parser.add_argument("--num-samples", type=int, default=24, help="random subnets evaluated per run")
    parser.add_argument("--step-repeats", type=int, default=15)
    parser.add_argument("--methods", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_deps"))
    parser.add_argument("--reuse", action="store_true",
                        help="reuse finished runs in OUT (summary.json and subnets.json) instead of retraining them")
    args = parser.parse_args()

    from keras_edge.evaluation import evaluate_run
    from keras_edge.runner import run_recipe
    from keras_edge_deps.pareto import plot_fronts

    factor = args.deps_epochs / 30
    results, reports = {}, {}
    for name in args.methods:
        recipe = scaled_recipe(name, factor, args)
        run_dir = args.out / name
        evaluated = time.perf_counter()
        reused = args.reuse and (run_dir / "subnets.json").exists()
        if reused:
            summary = json.loads((run_dir / "summary.json").read_text())
            report = json.loads((run_dir / "subnets.json").read_text())
        else:
            summary = run_recipe(recipe, run_dir, force=True)
            evaluated = time.perf_counter()
            report = evaluate_run(run_dir, "test", {"subnets": True})["subnets"]
        reports[name] = report
        train_macs = summary["train_macs"] + summary.get("ofa_teacher_macs", 0)
        results[name] = {
            "epochs": {s.name: s.epochs for s in recipe.stages}, "wall_time_s": summary["wall_time_s"],
            "train_macs": train_macs, "mean_pareto_accuracy": report["mean_pareto_accuracy"],
            "smallest": report["smallest"], "largest": report["largest"],
            "buckets": [{k: b[k] for k in ("bucket", "macs", "accuracy")} for b in report["buckets"]],
            "subnet_evaluation_s": None if reused else time.perf_counter() - evaluated, "reused": reused}
    step = step_time_ratio(args)
    base = results.get("deps")
    print(f"\n{'method':8} {'epochs':>6} {'wall s':>8} {'train TMACs':>11} {'mean Pareto':>11} "
          f"{'smallest':>9} {'largest':>8} {'cost vs DεpS':>12}")
    for name, r in results.items():
        ratio = r["wall_time_s"] / base["wall_time_s"] if base else float("nan")
        r["wall_time_ratio_to_deps"] = ratio
        r["train_macs_ratio_to_deps"] = r["train_macs"] / base["train_macs"] if base else float("nan")
        print(f"{name:8} {sum(r['epochs'].values()):6d} {r['wall_time_s']:8.1f} {r['train_macs'] / 1e12:11.2f} "
              f"{100 * r['mean_pareto_accuracy']:10.2f}% {100 * r['smallest']['accuracy']:8.2f}% "
              f"{100 * r['largest']['accuracy']:7.2f}% {ratio:11.2f}x")
    print(f"step time smallest/largest subnet: {step['time_ratio_smallest_over_largest']:.3f} "
          f"(MACs ratio {step['macs_ratio_smallest_over_largest']:.3f}; medians "
          f"{step['median_step_s']['smallest'] * 1e3:.1f} / {step['median_step_s']['largest'] * 1e3:.1f} ms; "
          f"{step['traces']} trace)")
    args.out.mkdir(parents=True, exist_ok=True)
    out = {"args": {k: str(v) for k, v in vars(args).items()}, "scale_factor": factor, "model": MODEL,
           "methods": results, "step_time": step}
    (args.out / "bench_deps.json").write_text(json.dumps(out, indent=2) + "\n")
    plot_fronts(reports, args.out / "pareto.png")
    print(f"wrote {args.out / 'bench_deps.json'} and {args.out / 'pareto.png'}")


if __name__ == "__main__":
    main()
