"""Benchmark DεpS against BigNAS and OFA once-for-all training on Fashion-MNIST, resumable per unit.

A unit is one (setting, method, seed) run: train the method's recipe (recipes/deps.toml,
bignas.toml, ofa.toml on the benchmark's data and supernet), then evaluate the same subnets
for every unit (``evaluate --subnets``: smallest, largest and random subnets, BatchNorm
recalibrated, test accuracy, MACs, the paper's bucket Pareto accuracy). Each finished unit is
written at once to UNITS/<setting>/<method>_seed<n>.json and skipped when the command runs
again; the JSON with its ``verdict`` and the PNG are assembled from whatever units exist
(saying how many are missing). A unit interrupted part-way resumes from its run folder's last
checkpoint on the same machine, with the cost it had spent until then (kept in the checkpoint).

Methods: ``deps`` (E epochs), ``deps_no_ramp`` (the same with ε = 1 at once: the ablation of
the ε ramp), ``bignas_ratio`` (E x 400/270 epochs, the papers' ratio), ``bignas_equal_cost``
(the epochs whose expected training MACs equal DεpS's), ``ofa`` (every phase x E/30, the
recipe's 67 : 30 ratio to DεpS). Seeds are paired: a seed fixes the data split, the data order
and the initial weights for every method. Costs are training MACs and CPU-seconds of this
process (this machine is shared, so wall time is reported but not compared).

    nohup nice -n 10 python tools/bench_deps.py > runs/bench_deps.log 2>&1 &   # full, resumable
    python tools/bench_deps.py --assemble-only                                 # JSON + PNG from units
    python tools/bench_deps.py --quick --out /tmp/bench                         # smoke run (tests)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_edge import hookimpl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("deps", "bignas_equal_cost", "bignas_ratio", "deps_no_ramp", "ofa")
EXTRA_METHODS = ("deps_long", "deps_long_warmup25")
"""Run on request (``--methods``), outside the verdict: ``deps_long``, DεpS at ``bignas_ratio``'s
epochs, tells whether DεpS's gap to that BigNAS is its method or its shorter training;
``deps_long_warmup25``, the same with P_warmup 25% instead of 50%, whether it is the subnets'
shorter training (they train only after the warmup, BigNAS's from the first step)."""
EXTRA_COMPARISONS = (("deps_long", "bignas_ratio"), ("deps_long", "deps"),
                     ("deps_long_warmup25", "bignas_ratio"), ("deps_long_warmup25", "deps_long"))
SETTINGS = {
    # Two-stage supernet (0.85-4.67 M MACs), all 54,000 training images, the 10,000 test images.
    "full": {"deps_epochs": 10, "limit": 0, "test_limit": 0, "num_samples": 24, "seeds": (0, 1),
             "methods": METHODS,
             "model": {"stage_widths": [24, 40], "stage_strides": [2, 2],
                       "stage_activations": ["relu", "hard_swish"], "head_width": 128}},
    # Smoke version for the test suite: a one-stage supernet on 540 images, two methods.
    "quick": {"deps_epochs": 2, "limit": 600, "test_limit": 200, "num_samples": 3, "seeds": (0,),
              "methods": ("deps", "bignas_equal_cost"),
              "model": {"stage_widths": [8], "stage_strides": [2], "stage_activations": ["hard_swish"],
                        "head_width": 16, "depths": [1, 2], "kernels": [3, 5], "expands": [2, 3]}},
}
BIGNAS_RATIO = 400 / 270  # the papers' epochs: BigNAS 400, DεpS 270 (ImageNet, MobileNetV3 space)
RECIPE_DEPS_EPOCHS = 30  # recipes/deps.toml; ofa.toml's stages are scaled by deps_epochs / 30


def recipe_dict(method: str, setting: dict, seed: int, epochs: dict) -> dict:
    """The raw recipe of one unit: the method's recipe on the benchmark's data, model and seed."""
    import tomllib

    base = {"deps": "deps", "deps_no_ramp": "deps", "deps_long": "deps", "deps_long_warmup25": "deps",
            "bignas_ratio": "bignas", "bignas_equal_cost": "bignas", "ofa": "ofa"}[method]
    raw = tomllib.loads((ROOT / "recipes" / f"{base}.toml").read_text())
    raw["data"].update(limit=setting["limit"], test_limit=setting["test_limit"], seed=seed)
    raw["model"]["options"] = setting["model"]
    raw["train"]["seed"] = seed
    plugins = raw.setdefault("plugins", {})
    plugins["supernet"] = {"num_samples": setting["num_samples"], "seed": 0}  # the same subnets for every unit
    if base == "deps":
        plugins["deps"]["epsilon_epochs"] *= setting["deps_epochs"] / RECIPE_DEPS_EPOCHS  # the reference's share
        if method == "deps_no_ramp":
            plugins["deps"]["epsilon_epochs"] = 0.0
        if method == "deps_long_warmup25":
            plugins["deps"]["warmup_fraction"] = 0.25
    if base == "ofa":
        raw["stages"] = ofa_stages(raw["stages"], setting["deps_epochs"] / RECIPE_DEPS_EPOCHS)
    else:
        raw["train"]["epochs"] = epochs[method]
    return raw


def ofa_stages(stages: list, factor: float) -> list:
    """OFA's phases with epochs x ``factor`` (at least 1); a sub-phase under one epoch is dropped
    and its share carried into the next."""
    kept, carry = [], 0.0
    for stage in stages:
        epochs = stage["epochs"] * factor + carry
        if epochs < 1 and stage["name"].endswith("_a"):
            carry = epochs
            continue
        kept.append({**stage, "epochs": max(1, round(epochs)), "cache": False})
        carry = 0.0
    return kept


def method_epochs(setting: dict) -> dict:
    """Epochs of each single-stage method; BigNAS at equal cost from the expected MACs per step."""
    from keras_edge_deps.supernet import ElasticMobileNet

    model = ElasticMobileNet((28, 28, 1), 10, **setting["model"])
    rng = np.random.default_rng(0)
    random_macs = np.mean([model.subnet_macs(model.space.sample(rng)) for _ in range(2000)])
    full, small = model.subnet_macs(None), model.subnet_macs(model.space.smallest())
    sandwich = full + small + 2 * random_macs  # num_subnets = 4 in both recipes
    e = setting["deps_epochs"]
    warmup = round(0.5 * e)  # recipes/deps.toml warmup_fraction
    deps_macs = warmup * full + (e - warmup) * sandwich
    ratio = max(1, round(e * BIGNAS_RATIO))
    return {"deps": e, "deps_no_ramp": e, "bignas_ratio": ratio, "deps_long": ratio, "deps_long_warmup25": ratio,
            "bignas_equal_cost": max(1, round(deps_macs / sandwich))}


class CostClock:
    """Autouse: the unit's training CPU and wall seconds, saved in every checkpoint
    (``state_dict``) so that an interrupted unit resumes with the cost it had spent."""

    autouse = True

    def __init__(self):
        self.spent, self.start = (0.0, 0.0), (time.process_time(), time.perf_counter())

    def seconds(self) -> tuple[float, float]:
        return (self.spent[0] + time.process_time() - self.start[0],
                self.spent[1] + time.perf_counter() - self.start[1])

    @hookimpl
    def state_dict(self):
        cpu, wall = self.seconds()
        return {"cpu_s": cpu, "wall_s": wall}

    @hookimpl
    def load_state_dict(self, state):
        self.spent, self.start = (state["cpu_s"], state["wall_s"]), (time.process_time(), time.perf_counter())


def run_unit(method: str, setting_name: str, seed: int, runs: Path) -> dict:
    from keras_edge.checkpoint import list_checkpoints
    from keras_edge.evaluation import evaluate_run
    from keras_edge.recipe import parse_recipe, to_toml
    from keras_edge.runner import run_recipe

    setting = SETTINGS[setting_name]
    raw = recipe_dict(method, setting, seed, method_epochs(setting))
    recipe = parse_recipe(raw, source=f"tools/bench_deps.py {setting_name}/{method}/seed{seed}")
    run_dir = runs / setting_name / f"{method}_seed{seed}"
    saved = run_dir / "recipe.toml"
    resume = (bool(list_checkpoints(run_dir / "checkpoints")) and saved.exists()
              and saved.read_text() == to_toml(recipe.to_dict()))
    if resume:
        print(f"unit {setting_name}/{method}/seed{seed}: resuming from {run_dir}", flush=True)
    clock = CostClock()
    summary = run_recipe(recipe, run_dir, resume=resume, force=not resume, extra_plugins={"cost_clock": clock})
    train_cpu, train_wall = clock.seconds()
    cpu = time.process_time()
    report = evaluate_run(run_dir, "test", {"subnets": True})["subnets"]
    history = read_history(run_dir / "metrics.csv")
    warmup = None
    if method.startswith("deps"):
        warmup = round(raw["plugins"]["deps"]["warmup_fraction"] * raw["train"]["epochs"])
    return {"method": method, "setting": setting_name, "seed": seed,
            "epochs": {s.name: s.epochs for s in recipe.stages},
            "train_macs": summary["train_macs"] + summary.get("ofa_teacher_macs", 0),
            "train_cpu_s": train_cpu, "train_wall_s": train_wall, "evaluation_cpu_s": time.process_time() - cpu,
            "mean_pareto_accuracy": report["mean_pareto_accuracy"],
            "front_pareto_accuracy": report["front_pareto_accuracy"],
            "smallest": report["smallest"], "largest": report["largest"],
            "test_accuracy_unrecalibrated": summary["stages"][recipe.stages[-1].name].get(
                "test_accuracy_stored_bn", summary["test_accuracy"]),
            "buckets": [{k: b[k] for k in ("bucket", "macs", "accuracy")} for b in report["buckets"]],
            "points": [{k: p[k] for k in ("kind", "macs", "accuracy")} for p in report["points"]],
            "val_accuracy": history, "warmup_epochs": warmup, "onset_drop": onset_drop(history, warmup)}


def read_history(path: Path) -> list:
    import csv

    with open(path) as f:
        return [float(row["val_accuracy"]) for row in csv.DictReader(f)]


def onset_drop(history: list, warmup) -> float | None:
    """Largest fall (points) of the full model's validation accuracy below its value at the end
    of the warmup, over the shrinking epochs (0 when it never falls)."""
    if warmup is None or not 0 < warmup < len(history):
        return None
    return max(0.0, 100 * (history[warmup - 1] - min(history[warmup:])))


def interval(differences) -> dict:
    """Mean and 95% t-interval of paired differences."""
    d = np.asarray(differences, float)
    if len(d) == 0:
        return {"n": 0, "mean": None, "ci95": None}
    if len(d) == 1:
        return {"n": 1, "mean": float(d[0]), "ci95": None}
    from scipy import stats

    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return {"n": len(d), "mean": float(d.mean()), "ci95": [float(d.mean() - half), float(d.mean() + half)]}


def assemble(units: dict, setting_name: str) -> dict:
    """The result JSON and its verdict from the finished units (a partial set is allowed)."""
    setting = SETTINGS[setting_name]
    expected = [(m, s) for s in setting["seeds"] for m in setting["methods"]]
    done = [key for key in expected if key in units]

    def per_seed(method, field):
        return {s: _get(units[(m, s)], field) for m, s in units if m == method}

    def mean(method, field):
        values = [v for v in per_seed(method, field).values() if v is not None]
        return float(np.mean(values)) if values else None

    def paired(a, b, field, scale=100.0):
        x, y = per_seed(a, field), per_seed(b, field)
        return interval([scale * (x[s] - y[s]) for s in sorted(set(x) & set(y))])

    def compared(a, b):
        """Paired differences ``a − b`` in points: Pareto accuracy, smallest and largest subnet."""
        return {f"{part}_points": paired(a, b, field)
                for part, field in (("pareto", "mean_pareto_accuracy"), ("smallest", "smallest.accuracy"),
                                    ("largest", "largest.accuracy"))}

    comparisons = {f"deps_minus_{b}": compared("deps", b) for b in ("bignas_ratio", "bignas_equal_cost", "ofa")}
    comparisons.update({f"{a}_minus_{b}": compared(a, b) for a, b in EXTRA_COMPARISONS
                        if any(m == a for m, _ in units)})
    complete_seeds = [s for s in setting["seeds"]
                      if all((m, s) in units for m in ("deps", "bignas_ratio", "bignas_equal_cost"))]
    deps_macs, ratio_macs = per_seed("deps", "train_macs"), per_seed("bignas_ratio", "train_macs")
    macs_ratios = [ratio_macs[s] / deps_macs[s] for s in set(deps_macs) & set(ratio_macs)]
    onset = [v for v in per_seed("deps", "onset_drop").values() if v is not None]
    verdict = {
        "seeds": len(complete_seeds),
        "largest_accuracy": mean("deps", "largest.accuracy"),
        "pareto": {"deps": mean("deps", "mean_pareto_accuracy"),
                   "bignas_ratio_epochs": mean("bignas_ratio", "mean_pareto_accuracy"),
                   "bignas_equal_cost": mean("bignas_equal_cost", "mean_pareto_accuracy"),
                   "ofa": mean("ofa", "mean_pareto_accuracy")},
        "smallest_gap_vs_bignas": comparisons["deps_minus_bignas_ratio"]["smallest_points"]["mean"],
        "onset_drop": float(np.mean(onset)) if onset else None,
        "macs_ratio_bignas_over_deps": float(np.mean(macs_ratios)) if macs_ratios else None,
    }
    methods = {}
    for method in (*setting["methods"], *EXTRA_METHODS):
        if any(m == method for m, _ in units):
            methods[method] = {field: mean(method, field) for field in (
                "mean_pareto_accuracy", "front_pareto_accuracy", "smallest.accuracy", "largest.accuracy",
                "train_macs", "train_cpu_s", "train_wall_s", "onset_drop")}
            methods[method]["epochs"] = next(units[(m, s)]["epochs"] for m, s in units if m == method)
    return {"setting": setting_name, "config": {k: v for k, v in setting.items()},
            "units_done": len(done), "units_total": len(expected),
            "missing": [f"{m}_seed{s}" for m, s in expected if (m, s) not in units],
            "partial": len(done) < len(expected), "verdict": verdict, "targets": targets(verdict, comparisons),
            "comparisons": comparisons, "methods": methods,
            "units": {f"{m}_seed{s}": units[(m, s)] for m, s in sorted(units)}}


def targets(verdict: dict, comparisons: dict) -> dict:
    """The issue's targets, each true/false (None while its units are missing)."""
    pareto_ratio = comparisons["deps_minus_bignas_ratio"]["pareto_points"]
    pareto_equal = comparisons["deps_minus_bignas_equal_cost"]["pareto_points"]

    def at_least(ci, mean):  # within seed noise: the interval reaches 0, or the mean is >= 0
        return None if mean is None else bool(mean >= 0 or (ci is not None and ci[1] >= 0))

    def points(value):  # accuracy differences in points, at the data's resolution, not float noise
        return None if value is None else round(value, 6)

    gap, drop = points(verdict["smallest_gap_vs_bignas"]), points(verdict["onset_drop"])
    largest = verdict["largest_accuracy"]
    return {"pareto_deps_ge_bignas_ratio": at_least(pareto_ratio["ci95"], pareto_ratio["mean"]),
            "pareto_deps_gt_bignas_equal_cost": None if pareto_equal["mean"] is None else pareto_equal["mean"] > 0,
            "smallest_within_1_point": None if gap is None else gap >= -1.0,
            "onset_drop_le_2_points": None if drop is None else drop <= 2.0,
            "largest_ge_88": None if largest is None else largest >= 0.88}


def _get(unit: dict, field: str):
    for key in field.split("."):
        unit = unit[key]
    return unit


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_edge_deps.pareto import bucket_best

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, method in enumerate(result["methods"]):
        units = [u for u in result["units"].values() if u["method"] == method]
        for j, unit in enumerate(units):
            best = sorted(bucket_best(unit["points"], 6), key=lambda p: p["macs"])
            ax.plot([p["macs"] / 1e6 for p in best], [100 * p["accuracy"] for p in best], "-o", ms=3,
                    color=f"C{i}", alpha=0.8, label=None if j else
                    f"{method} ({100 * result['methods'][method]['mean_pareto_accuracy']:.2f}%)")
            if method.startswith("deps"):
                bx.plot(range(1, len(unit["val_accuracy"]) + 1), [100 * a for a in unit["val_accuracy"]],
                        color=f"C{i}", alpha=0.8, label=None if j else method)
                bx.axvline(unit["warmup_epochs"] + 0.5, color="grey", ls=":")
    ax.set(xlabel="MACs per example (millions)", ylabel="test accuracy (%), best subnet per bucket",
           title=f"{result['units_done']}/{result['units_total']} units")
    bx.set(xlabel="epoch", ylabel="full model val accuracy (%)", title="shrinking starts at the dotted line")
    for a in (ax, bx):
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_units(folder: Path) -> dict:
    units = {}
    for path in sorted(folder.glob("*_seed*.json")):
        unit = json.loads(path.read_text())
        units[(unit["method"], unit["seed"])] = unit
    return units


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smoke setting (tiny data and supernet)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for units/, runs/, deps.json and deps_pareto.png "
                             "(default: units in docs/benchmarks/deps_units, runs in runs/bench_deps)")
    parser.add_argument("--assemble-only", action="store_true", help="write the JSON and PNG from the finished units")
    parser.add_argument("--max-units", type=int, default=0, help="stop after training this many units (0: all)")
    parser.add_argument("--methods", nargs="+", choices=(*METHODS, *EXTRA_METHODS),
                        help="methods to train (default: the setting's; deps_long, deps_long_warmup25: the extra "
                             "experiments)")
    args = parser.parse_args(argv)
    setting_name = "quick" if args.quick else "full"
    setting = SETTINGS[setting_name]
    if args.out is None:
        units_dir, runs = ROOT / "docs/benchmarks/deps_units" / setting_name, ROOT / "runs/bench_deps"
        json_path, png_path = ROOT / "docs/benchmarks/deps.json", ROOT / "docs/benchmarks/deps_pareto.png"
    else:
        units_dir, runs = args.out / "units" / setting_name, args.out / "runs"
        json_path, png_path = args.out / "deps.json", args.out / "deps_pareto.png"
    units_dir.mkdir(parents=True, exist_ok=True)
    trained = 0
    for seed in ([] if args.assemble_only else setting["seeds"]):
        for method in args.methods or setting["methods"]:
            path = units_dir / f"{method}_seed{seed}.json"
            if path.exists():
                print(f"unit {setting_name}/{method}/seed{seed}: done, skipped", flush=True)
                continue
            if args.max_units and trained >= args.max_units:
                continue
            print(f"unit {setting_name}/{method}/seed{seed}: training", flush=True)
            unit = run_unit(method, setting_name, seed, runs)
            path.write_text(json.dumps(unit, indent=1) + "\n")
            trained += 1
            print(f"unit {setting_name}/{method}/seed{seed}: bucket Pareto {100 * unit['mean_pareto_accuracy']:.2f}%, "
                  f"smallest {100 * unit['smallest']['accuracy']:.2f}%, largest {100 * unit['largest']['accuracy']:.2f}%, "
                  f"{unit['train_macs'] / 1e12:.2f} T training MACs, {unit['train_cpu_s']:.0f} CPU-s", flush=True)
    result = assemble(load_units(units_dir), setting_name)
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    if result["units_done"]:
        plot(result, png_path)
    print(f"{result['units_done']}/{result['units_total']} units; verdict {json.dumps(result['verdict'])}")
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
