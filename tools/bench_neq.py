"""Benchmark of neuron selection under a budget (issue 3): accuracy against budget.

Budgets x methods (neq_velocity, neq_random, sparse_update) x seeds, on two real
downstream tasks of one cached Fashion-MNIST pretraining (classes 0-5): scikit-learn's
handwritten digits, and the four other Fashion-MNIST classes (6-9). Full fine-tuning and
classifier-only fine-tuning are the reference points. Sparse Update schemes come from
``keras-edge neq-search``'s contribution analysis (seed 0, validation set) and evolutionary
search, one per budget. Every run is ``recipes/finetune_full.toml`` with the fine-tuning
stage's data, seed, plugin and options replaced. Writes ``results.json`` and ``accuracy_vs_budget.png``.

    python tools/bench_neq.py --out bench_results/neq
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Only the NEq plugins: autouse plugins of other packages must not change these runs.
os.environ.setdefault("KERAS_EDGE_PLUGINS", "neq_velocity,neq_random,sparse_update,classifier_only")

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("neq_velocity", "neq_random", "sparse_update")
TASKS = {
    "digits": {"name": "digits"},
    "fashion_6_9": {"name": "fashion_mnist", "classes": [6, 7, 8, 9], "limit": 1200, "test_limit": 2000},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_results/neq", help="output folder")
    parser.add_argument("--budgets", default="0.09,0.15,0.21,0.27,0.31,0.5,1.0")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--epochs", type=int, default=0, help="fine-tuning epochs (0: the recipe's)")
    parser.add_argument("--search-epochs", type=int, default=1, help="epochs of each contribution run")
    return parser.parse_args(argv)


def base_recipe(args) -> dict:
    import tomllib

    raw = tomllib.loads((ROOT / "recipes" / "finetune_full.toml").read_text())
    args.epochs = args.epochs or raw["stages"][-1]["epochs"]
    return raw


def task_recipe(raw: dict, task: str, epochs: int, seed: int, plugin=None, options=None) -> dict:
    raw = copy.deepcopy(raw)
    stage = raw["stages"][-1]
    stage["epochs"] = epochs
    stage["data"] = {**stage["data"], **TASKS[task]}
    stage["train"] = {**stage["train"], "seed": seed}
    stage["plugins"] = [plugin] if plugin else []
    stage["options"] = {plugin: options} if options else {}
    return raw


def run(raw: dict) -> dict:
    from keras_edge.recipe import parse_recipe
    from keras_edge.runner import run_recipe

    start = time.perf_counter()
    summary = run_recipe(parse_recipe(raw, source="bench_neq"))
    last = summary["stages"][raw["stages"][-1]["name"]]
    fraction = next((v for k, v in last.items() if k.endswith("_fraction")), 1.0)
    return {"test_accuracy": last["test_accuracy"], "fraction": fraction,
            "finetune_s": last["time_s"], "wall_s": time.perf_counter() - start}


def search_schemes(raw: dict, task: str, budgets, args) -> dict:
    from keras_edge.recipe import parse_recipe
    from keras_edge_neq.search import contribution_analysis, evolve_scheme
    from keras_edge_neq.sparse_update import SchemeOptions

    recipe = parse_recipe(task_recipe(raw, task, args.epochs, 0, "sparse_update"), source="bench_neq")
    contrib = contribution_analysis(recipe, epochs=args.search_epochs)
    schemes = {}
    for budget in budgets:
        found = evolve_scheme(contrib, SchemeOptions(budget=budget))
        found.pop("predicted_gain")
        schemes[budget] = found
    return {"baseline": contrib.baseline, "bias": contrib.bias, "weight": contrib.weight, "schemes": schemes}


def summarise(records: list, budgets, methods, tasks) -> dict:
    def accs(**match):
        return [r["test_accuracy"] for r in records if all(r[k] == v for k, v in match.items())]

    def stats(values):
        return {"mean": statistics.mean(values), "std": statistics.pstdev(values), "n": len(values)} if values else None

    table = {task: {m: {str(b): stats(accs(task=task, method=m, budget=b)) for b in budgets} for m in methods}
             for task in tasks}
    for task in tasks:
        for ref in ("full", "classifier_only"):
            table[task][ref] = stats(accs(task=task, method=ref))
    diffs = {}
    if {"neq_velocity", "neq_random"} <= set(methods):
        for b in budgets:
            pairs = [(v["test_accuracy"], r["test_accuracy"]) for v in records for r in records
                     if v["method"] == "neq_velocity" and r["method"] == "neq_random" and v["budget"] == b
                     and r["budget"] == b and v["task"] == r["task"] and v["seed"] == r["seed"]]
            diffs[str(b)] = statistics.mean(a - c for a, c in pairs) if pairs else None
    times = {m: statistics.median([r["finetune_s"] for r in records if r["method"] == m])
             for m in (*methods, "full", "classifier_only") if any(r["method"] == m for r in records)}
    return {"table": table, "velocity_minus_random": diffs, "median_finetune_s": times}


def plot(summary: dict, budgets, methods, tasks, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    xs = [100 * b for b in budgets]
    for ax, task in zip(axes[0], tasks):
        rows = summary["table"][task]
        for method in methods:
            cells = [rows[method][str(b)] for b in budgets]
            mean = [100 * c["mean"] for c in cells]
            std = [100 * c["std"] for c in cells]
            ax.errorbar(xs, mean, yerr=std, marker="o", capsize=3, label=method)
        for ref, style in (("full", "--"), ("classifier_only", ":")):
            if rows[ref]:
                ax.axhline(100 * rows[ref]["mean"], linestyle=style, color="grey", label=ref)
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.set_xlabel("budget (% of trainable parameters)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{task}: mean and std over seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    args = parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    tasks = [t for t in args.tasks.split(",") if t]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = base_recipe(args)
    print(f"recipes/finetune_full.toml, fine-tuning {args.epochs} epochs with the data of "
          f"{[TASKS[t] for t in tasks]}, seeds 0..{args.seeds - 1}", flush=True)
    began = time.perf_counter()
    searches = {t: search_schemes(raw, t, budgets, args) for t in tasks} if "sparse_update" in methods else {}
    records = []
    for seed in range(args.seeds):  # seed by seed, so an interrupted run still leaves whole seeds
        for task in tasks:
            jobs = [("full", None, None), ("classifier_only", None, None)]
            jobs += [(m, b, searches[task]["schemes"][b] if m == "sparse_update" else {})
                     for b in budgets for m in methods]
            for method, budget, scheme in jobs:
                options = None if budget is None else {"budget": budget, **scheme}
                plugin = None if method == "full" else method
                result = run(task_recipe(raw, task, args.epochs, seed, plugin, options))
                records.append({"task": task, "method": method, "budget": budget, "seed": seed, **result})
                print(f"{task} seed {seed} {method} budget {budget}: test accuracy "
                      f"{result['test_accuracy']:.4f}, updated {result['fraction']:.3f}", flush=True)
        summary = summarise(records, budgets, methods, tasks)
        results = {"args": vars(args), "seeds_done": seed + 1, "records": records, "search": searches,
                   **summary, "total_s": time.perf_counter() - began}
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        plot(summary, budgets, methods, tasks, out / "accuracy_vs_budget.png")
        report(summary, budgets, methods, tasks)
        print(f"{seed + 1} seed(s): wrote {out / 'results.json'} and {out / 'accuracy_vs_budget.png'} "
              f"after {results['total_s']:.0f} s", flush=True)
    return 0


def report(summary: dict, budgets, methods, tasks) -> None:
    for task in tasks:
        rows = summary["table"][task]
        print(f"\n{task}: test accuracy %, mean +- std over seeds")
        print("budget  " + "".join(f"{m:>22}" for m in methods))
        for b in budgets:
            cells = [rows[m][str(b)] for m in methods]
            print(f"{100 * b:5.0f}%  " + "".join(f"{100 * c['mean']:15.2f} +- {100 * c['std']:4.2f}" for c in cells))
        for ref in ("full", "classifier_only"):
            print(f"{ref}: {100 * rows[ref]['mean']:.2f} +- {100 * rows[ref]['std']:.2f}")
    diffs = summary["velocity_minus_random"]
    if diffs:
        print("\nvelocity - random, mean over tasks and seeds (points): "
              + ", ".join(f"{100 * float(b):g}%: {100 * d:+.2f}" for b, d in diffs.items()))
        wins = [d > 0 for d in diffs.values()]
        print(f"velocity beats random on average at {sum(wins)} of {len(wins)} budgets; "
              f"overall mean difference {100 * statistics.mean(diffs.values()):+.2f} points")
        near = min(budgets, key=lambda b: abs(b - 0.25))
        gaps = [summary["table"][t]["full"]["mean"] - summary["table"][t]["neq_velocity"][str(near)]["mean"]
                for t in tasks]
        print(f"velocity at {100 * near:g}% vs full fine-tuning: "
              + ", ".join(f"{t} {-100 * g:+.2f} points" for t, g in zip(tasks, gaps))
              + f" (target: within 1.5 points: {'met' if all(g <= 0.015 for g in gaps) else 'not met'})")
    times = summary["median_finetune_s"]
    print("median fine-tuning stage time, s (ratio to full): "
          + ", ".join(f"{m} {t:.1f} ({t / times['full']:.2f}x)" for m, t in times.items()))


if __name__ == "__main__":
    sys.exit(main())
