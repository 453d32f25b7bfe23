"""Benchmark of neuron selection under a budget (issue 11): does velocity beat random?

A conv-dominated ``vgg`` (width 0.5) is pretrained once on Fashion-MNIST classes 0-5
(cached) and fine-tuned on two real downstream tasks, scikit-learn's digits and
Fashion-MNIST classes 6-9, under budgets of the authors' denominator (convolution
kernels and biases), with the plugins' defaults (the authors' code):

* paper table: velocity (|v|/cost, the authors' ranking, and |v|), random and Sparse
  Update (a scheme searched per task and budget, tiny-training's contribution analysis
  and evolutionary search on the validation set of seed 0) at each budget; 100% is full
  fine-tuning; classifier-only fine-tuning is the floor;
* equal-budget table: velocity (|v|/cost) and random get exactly the parameter count the
  Sparse Update scheme spends at that budget;
* ``mobilenet_v2`` (alpha 0.35) as a second architecture on fewer budgets and seeds;
* on-device training memory of the exported ``train`` signature (``keras-edge export``
  with the selection) in LiteRT, per budget, against full fine-tuning.

Seeds are paired: one pretrained model, and per seed the same data order and classifier
initialisation for every method. Each finished unit (model x task x seed x table x method
x budget) is written at once as a small JSON under ``--units`` and skipped when the command
runs again; the JSON and PNG are assembled from whatever units exist (saying how many are
missing)::

    nice -n 10 python tools/bench_neq.py                 # full run (resumable)
    python tools/bench_neq.py --assemble                 # JSON + PNG from the units only
    nice -n 10 python tools/bench_neq.py --experiment low_budgets   # an extra experiment
    python tools/bench_neq.py --quick --units /tmp/u --json /tmp/neq.json --png /tmp/neq.png
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_edge import hookimpl  # noqa: E402  (after the environment above)

ROOT = Path(__file__).resolve().parents[1]
PAPER_METHODS = ("velocity_per_cost", "velocity", "random", "sparse_update")
EQUAL_METHODS = ("velocity_per_cost", "random")
PLUGIN = {"velocity_per_cost": ("neq_velocity", {"rank": "velocity_per_cost"}),
          "velocity": ("neq_velocity", {"rank": "velocity"}),
          "random": ("neq_random", {}), "sparse_update": ("sparse_update", {}),
          "classifier_only": ("classifier_only", None), "full": (None, None)}
TASKS = {
    "digits": {"name": "digits"},
    "fashion_6_9": {"name": "fashion_mnist", "classes": [6, 7, 8, 9], "limit": 800, "test_limit": 2000},
}


@dataclasses.dataclass(frozen=True)
class Arm:
    """One architecture's grid."""

    model: dict
    tasks: tuple
    seeds: tuple
    budgets: tuple
    paper_methods: tuple = PAPER_METHODS
    equal_methods: tuple = EQUAL_METHODS


@dataclasses.dataclass(frozen=True)
class Settings:
    arms: dict
    pretrain: dict
    finetune_epochs: int
    task_limit: int | None
    search: dict
    memory: dict


PINNED = {"bn_momentum": 0.99}
"""Model settings fixed by the benchmark, not left to zoo defaults: the units so far were
trained with Keras's BatchNorm momentum, the zoo's default until it became 0.9."""

FULL = Settings(
    arms={"vgg": Arm({"name": "vgg", "width": 0.5, "options": PINNED}, ("digits", "fashion_6_9"), (0, 1, 2, 3, 4),
                     (0.09, 0.15, 0.21, 0.27, 0.31, 0.5)),
          "mobilenet_v2": Arm({"name": "mobilenet_v2", "width": 0.35, "options": PINNED}, ("digits",), (0, 1, 2),
                              (0.09, 0.27, 0.5), equal_methods=())},
    pretrain={"epochs": 5, "limit": 15000},
    finetune_epochs=15, task_limit=None,
    search={"epochs": 3, "ratios": (0.25, 0.5, 1.0), "max_layers": 8},
    memory={"model": "vgg", "task": "digits", "seed": 0, "method": "velocity_per_cost", "steps": 20,
            "variants": ("bn_with_neuron", "last_layers", "sparse_update", "classifier_only")},
)
VGG = FULL.arms["vgg"]
NO_MEMORY = {**FULL.memory, "seed": None}   # no unit of an experiment is a memory unit
EXPERIMENTS = {
    "low_budgets": dataclasses.replace(FULL, arms={"vgg": dataclasses.replace(
        VGG, budgets=(0.03, 0.05), paper_methods=("velocity_per_cost", "velocity", "random"), equal_methods=())},
        memory=NO_MEMORY),
    "more_seeds": dataclasses.replace(FULL, arms={"vgg": dataclasses.replace(
        VGG, tasks=("fashion_6_9",), seeds=tuple(range(10)), paper_methods=("velocity_per_cost", "random"),
        equal_methods=())}, memory=NO_MEMORY),
    "mobilenet_longer": dataclasses.replace(FULL, arms={"mobilenet_v2_30_epochs": dataclasses.replace(
        FULL.arms["mobilenet_v2"], budgets=(0.27,), paper_methods=("velocity_per_cost", "random"))},
        finetune_epochs=30, memory=NO_MEMORY),
}
"""Extra experiments behind the card's findings (``--experiment NAME``), their units beside the
grid's and the grid's references reused where they exist: ``low_budgets``, velocity and random
below the grid's budgets, where random leaves more room to full fine-tuning; ``more_seeds``,
velocity (|v|/cost) and random on Fashion-MNIST 6-9 with five fresh seeds beside the grid's five,
to tell a small effect from none; ``mobilenet_longer``, ``mobilenet_v2`` at 27% and its
references fine-tuned 30 epochs instead of 15, to tell a slower start from a lower ceiling. None changes the grid's verdict."""
QUICK = Settings(
    arms={"vgg": Arm({"name": "vgg", "width": 0.25}, ("digits",), (0, 1), (0.15,),
                     ("velocity_per_cost", "random", "sparse_update"), ("velocity_per_cost",))},
    pretrain={"epochs": 1, "limit": 600},
    finetune_epochs=2, task_limit=300,
    search={"epochs": 1, "ratios": (1.0,), "max_layers": 1},
    memory={"model": "vgg", "task": "digits", "seed": 0, "method": "velocity_per_cost", "steps": 3,
            "variants": ("sparse_update",)},
)


# ---------------------------------------------------------------- units


def unit_list(settings: Settings) -> list[dict]:
    """Every unit, task by task; within a task the references of every seed first, then budget
    by budget with every seed, so that a partial run has all paired seeds at its first budgets."""
    units = []
    for arm_name, arm in settings.arms.items():
        for task in arm.tasks:
            bases = [{"model": arm_name, "task": task, "seed": seed} for seed in arm.seeds]
            for base in bases:
                units.append({**base, "table": "paper", "method": "full", "budget": 1.0})
                units.append({**base, "table": "paper", "method": "classifier_only", "budget": None})
            for budget in arm.budgets:
                for base in bases:
                    units += [{**base, "table": "paper", "method": m, "budget": budget} for m in arm.paper_methods]
                    units += [{**base, "table": "equal", "method": m, "budget": budget} for m in arm.equal_methods]
    return units


def unit_path(units_dir: Path, unit: dict) -> Path:
    budget = "none" if unit["budget"] is None else f"{unit['budget']:g}"
    name = f"{unit['table']}_{unit['method']}_{budget}.json"
    return units_dir / unit["model"] / unit["task"] / f"s{unit['seed']}" / name


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True, default=lambda o: o.item()) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------- recipes and runs


def base_recipe(settings: Settings, arm: Arm) -> dict:
    import tomllib

    raw = tomllib.loads((ROOT / "recipes" / "finetune_full.toml").read_text())
    raw["model"] = dict(arm.model)
    raw["stages"][0].update(epochs=settings.pretrain["epochs"])
    raw["stages"][0]["data"]["limit"] = settings.pretrain["limit"]
    raw["stages"][-1]["epochs"] = settings.finetune_epochs
    return raw


def task_recipe(raw: dict, settings: Settings, task: str, seed: int, plugin=None, options=None) -> dict:
    raw = copy.deepcopy(raw)
    stage = raw["stages"][-1]
    stage["data"] = {**stage["data"], **TASKS[task]}
    if settings.task_limit:
        stage["data"]["limit"] = min(settings.task_limit, stage["data"].get("limit", settings.task_limit))
        stage["data"]["test_limit"] = settings.task_limit
    stage["train"] = {**stage.get("train", {}), "seed": seed}
    stage["plugins"] = [plugin] if plugin else []
    stage["options"] = {plugin: options} if options is not None else {}
    return raw


class Probe:
    """Records the fine-tuning stage's validation accuracy per epoch and its selection logs."""

    autouse = True

    def __init__(self):
        self.val, self.logs = [], {}

    @hookimpl(trylast=True)   # after the selection plugin has added its logs
    def on_epoch_end(self, ctx, logs):
        if ctx.stage_index == len(ctx.recipe.stages) - 1:
            self.val.append(float(logs["val_accuracy"]))
            self.logs = {k: float(v) for k, v in logs.items() if k.split("_")[0] in ("neq", "sparse", "classifier")}


def train(raw: dict, out_dir=None) -> dict:
    """Run a recipe dict; the fine-tuning stage's results and its cost."""
    import keras

    from keras_edge.recipe import parse_recipe
    from keras_edge.runner import run_recipe

    probe = Probe()
    cpu, wall = time.process_time(), time.perf_counter()
    summary = run_recipe(parse_recipe(raw, source="bench_neq"), out_dir, force=out_dir is not None,
                         extra_plugins={"bench_probe": probe})
    last = summary["stages"][raw["stages"][-1]["name"]]
    result = {"test_accuracy": last["test_accuracy"], "val_accuracy": probe.val,
              "best_val_epoch": 1 + max(range(len(probe.val)), key=probe.val.__getitem__) if probe.val else None,
              "selection": probe.logs, "train_macs": summary["train_macs"],
              "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
              "run_dir": summary.get("run_dir")}
    keras.backend.clear_session()
    return result


def search(raw: dict, settings: Settings, arm: Arm, task: str, path: Path) -> dict:
    """Sparse Update schemes per budget (seed 0's validation set) and what each spends."""
    if path.exists():
        return json.loads(path.read_text())
    from keras_edge.recipe import parse_recipe
    from keras_edge_neq.budget import CostModel
    from keras_edge_neq.neurons import in_scope, neuron_layers
    from keras_edge_neq.search import contribution_analysis, evolve_scheme
    from keras_edge_neq.sparse_update import SchemeOptions, scheme_masks

    cpu = time.process_time()
    recipe = parse_recipe(task_recipe(raw, settings, task, 0, "sparse_update", {}), source="bench_neq")
    contrib = contribution_analysis(recipe, epochs=settings.search["epochs"], ratios=settings.search["ratios"],
                                    max_layers=settings.search["max_layers"])
    layers = in_scope(neuron_layers(contrib.model), "conv")
    schemes = {}
    for budget in arm.budgets:
        found = evolve_scheme(contrib, SchemeOptions(budget=budget))
        gain = found.pop("predicted_gain")
        spent = CostModel("params").selection_cost(contrib.model, layers, scheme_masks(layers, SchemeOptions(**{
            k: tuple(v) if isinstance(v, list) else v for k, v in found.items()})))
        schemes[f"{budget:g}"] = {"scheme": found, "predicted_gain": gain, "params": int(spent),
                                  "fraction": spent / CostModel("params").denominator(contrib.model, layers)}
    result = {"baseline_val_accuracy": contrib.baseline, "bias_gain": contrib.bias, "weight_gain": contrib.weight,
              "schemes": schemes, "cpu_s": time.process_time() - cpu}
    write_json(path, result)
    return result


def run_unit(unit: dict, raw: dict, settings: Settings, found: dict, scratch: Path) -> dict:
    plugin, options = PLUGIN[unit["method"]]
    if options is not None:
        options = dict(options)
        if unit["method"] == "sparse_update":
            options.update(found["schemes"][f"{unit['budget']:g}"]["scheme"], budget=unit["budget"])
        elif unit["table"] == "equal":
            options.update(budget=max(1, found["schemes"][f"{unit['budget']:g}"]["params"]), budget_unit="params")
        else:
            options.update(budget=unit["budget"])
    keep = memory_unit(unit, settings)
    out = scratch / "runs" / unit_path(Path(), unit).with_suffix("") if keep else None
    result = train(task_recipe(raw, settings, unit["task"], unit["seed"], plugin, options), out)
    if keep:
        result["memory"] = device_memory(Path(result["run_dir"]), settings, scratch)
    result.pop("run_dir")
    return {**unit, "options": options, **result}


def memory_unit(unit: dict, settings: Settings) -> bool:
    m = settings.memory
    return (unit["model"], unit["task"], unit["seed"]) == (m["model"], m["task"], m["seed"]) and (
        (unit["table"] == "paper" and unit["method"] in (m["method"], "full")))


def device_memory(run_dir: Path, settings: Settings, scratch: Path, selection: Path | None = None) -> dict:
    """Export the run with its selection (default: the run's own) and measure LiteRT training
    memory in a fresh process."""
    import numpy as np

    from keras_edge.data import load_data, to_float
    from keras_edge.export.command import export_run
    from keras_edge.recipe import load_recipe

    selection = selection or run_dir / "selection.npz"
    out = run_dir / f"{selection.stem}.tflite"
    report = export_run(run_dir, out, batch_size=32, learning_rate=0.05, momentum=0.0,
                        selection=selection if selection.is_file() else None)
    batches = scratch / "memory_batches.npz"
    if not batches.exists():
        data = load_data(load_recipe(run_dir / "recipe.toml").stages[-1].data)
        n = settings.memory["steps"] * 32
        x = to_float(data.x_train[:n]).reshape(-1, 32, *data.x_train.shape[1:])
        np.savez(batches, x=x, y=data.y_train[:n].astype(np.int32).reshape(-1, 32))
    child = subprocess.run([sys.executable, __file__, "--child-memory", report["file"], str(batches),
                            str(settings.memory["steps"])], capture_output=True, text=True)
    if child.returncode:
        raise RuntimeError(f"LiteRT memory measurement failed: {child.stderr.strip().splitlines()[-1:]}")
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    return {**measured, "trained_parameters": report["trained_parameters"],
            "trainable_parameters": report["trainable_parameters"], "tflite_bytes": report["bytes"]}


def variant_selection(run_dir: Path, variant: str, scheme: dict | None) -> Path:
    """A selection for the memory experiment, on the run's model (memory does not depend on
    the weights): ``bn_with_neuron``: the run's selection with each BatchNorm channel training
    only where its neuron does (``accounting = "all"``'s rule); ``last_layers``: as many
    convolution parameters as the run's selection, taken from the last convolution backwards,
    BatchNorm with its neurons; ``sparse_update``: the budget's Sparse Update scheme;
    ``classifier_only``: the classifier alone."""
    import keras
    import numpy as np

    from keras_edge_neq.budget import CostModel
    from keras_edge_neq.fill import candidates, greedy_fill
    from keras_edge_neq.neurons import batchnorm_layers, neuron_layers, neuron_masks
    from keras_edge_neq.selection import write_selection
    from keras_edge_neq.sparse_update import SchemeOptions, scheme_masks

    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    layers = neuron_layers(model)
    masks = {v.path: np.float32(0.0) for v in model.trainable_variables}
    if variant == "bn_with_neuron":
        with np.load(run_dir / "selection.npz") as saved:
            masks.update({k: saved[k] for k in saved.files})
        for layer in layers:
            if layer.gamma is not None and not layer.is_classifier:
                selected = layer.selected_outputs(masks[layer.kernel.path]).astype(np.float32)
                masks[layer.gamma.path], masks[layer.beta.path] = selected, selected
    elif variant == "last_layers":
        with np.load(run_dir / "selection.npz") as saved:
            own = CostModel("params").selection_cost(model, layers, {k: saved[k] for k in saved.files})
        conv = [n for n in layers if not n.is_dense or n.is_classifier]
        order = np.arange(len(candidates(conv)[0]))[::-1]   # from the last convolution backwards
        selected = greedy_fill(conv, order, CostModel("params"), own, "stop")
        masks.update(neuron_masks(conv, selected))   # BatchNorm channels with their neurons
    elif variant == "sparse_update":
        masks.update(scheme_masks([n for n in layers if not n.is_dense or n.is_classifier], SchemeOptions(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in scheme.items()})))
        masks.update({v.path: np.float32(1.0) for bn in batchnorm_layers(model) for v in (bn.gamma, bn.beta)})
    else:
        masks.update(next(n for n in layers if n.is_classifier).masks(np.ones(model.output_shape[-1], bool)))
    path = run_dir / f"selection_{variant}.npz"
    write_selection(path, model, masks)
    return path


def memory_variants(units_dir: Path, settings: Settings, scratch: Path) -> int:
    """For every finished memory unit whose run folder is here: the memory of other selections
    on the same model (``variant_selection``); each is a small JSON beside the unit."""
    done = 0
    for unit in unit_list(settings):
        if not memory_unit(unit, settings) or not unit_path(units_dir, unit).exists():
            continue
        run_dir = scratch / "runs" / unit_path(Path(), unit).with_suffix("")
        label = f"{unit['budget']:g}"
        variants = ("classifier_only",) if unit["method"] == "full" else ("bn_with_neuron", "last_layers",
                                                                          "sparse_update")
        for variant in set(variants) & set(settings.memory["variants"]):
            path = unit_path(units_dir, unit).with_name(f"memory_{variant}_{label}.json")
            if path.exists() or not (run_dir / "model.keras").exists():
                continue
            scheme = None
            if variant == "sparse_update":
                found = json.loads((units_dir / unit["model"] / unit["task"] / "search.json").read_text())
                scheme = found["schemes"][label]["scheme"]
            selection = variant_selection(run_dir, variant, scheme)
            memory = device_memory(run_dir, settings, scratch, selection)
            write_json(path, {**unit, "variant": variant, "memory": memory})
            done += 1
    return done


def status_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process, KiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def child_memory(model_path: str, data_path: str, steps: int) -> int:
    """In a fresh process: run ``train`` ``steps`` times in LiteRT; print RSS before and the
    peak (KiB). Inputs other than ``x`` and ``y`` (e.g. a learning rate) get ones."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    with np.load(data_path) as f:
        x, y = f["x"], f["y"]
    before = status_kib("VmRSS")
    runner = Interpreter(model_path=model_path, num_threads=1).get_signature_runner("train")
    extra = {name: np.ones(d["shape"], d["dtype"]) for name, d in runner.get_input_details().items()
             if name not in ("x", "y")}
    for step in range(steps):
        runner(x=x[step % len(x)], y=y[step % len(y)].astype(runner.get_input_details()["y"]["dtype"]), **extra)
    peak = status_kib("VmHWM")
    print(json.dumps({"baseline_rss_kib": before, "peak_rss_kib": peak, "training_kib": peak - before}))
    return 0


# ---------------------------------------------------------------- assembly


def half_width(sd: float, n: int) -> float:
    """Half the 95% t-interval of a mean over n values with sample standard deviation sd."""
    from scipy import stats

    return stats.t.ppf(0.975, n - 1) * sd / n ** 0.5


def ci95(values: list) -> tuple:
    """Mean and 95% t-interval of a sample (None when fewer than 2 values)."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, None, None
    half = half_width(statistics.stdev(values), len(values))
    return mean, mean - half, mean + half


def assemble(settings: Settings, units_dir: Path, quick: bool) -> dict:
    expected = unit_list(settings)
    records, missing = [], 0
    for unit in expected:
        path = unit_path(units_dir, unit)
        if path.exists():
            records.append(json.loads(path.read_text()))
        else:
            missing += 1
    tables, verdict, memory, costs = {}, {}, {}, {}
    for arm_name, arm in settings.arms.items():
        for task in arm.tasks:
            key = f"{arm_name}/{task}"
            mine = [r for r in records if r["model"] == arm_name and r["task"] == task]
            tables[key] = task_table(mine, arm)
            verdict[key] = task_verdict(tables[key], arm_name, arm)
            costs[key] = {m: statistics.median([r["cpu_s"] for r in mine if r["method"] == m])
                          for m in (*PAPER_METHODS, "full", "classifier_only") if any(r["method"] == m for r in mine)}
            searched = units_dir / arm_name / task / "search.json"
            if searched.exists():
                tables[key]["sparse_update_schemes"] = json.loads(searched.read_text())["schemes"]
    mem = [r for r in records if "memory" in r]
    full = next((r["memory"] for r in mem if r["method"] == "full"), None)
    def ratio(m):
        return m["training_kib"] / full["training_kib"] if full and full["training_kib"] else None

    for r in mem:
        label = "1" if r["method"] == "full" else f"{r['budget']:g}"
        memory[label] = {**r["memory"], "training_kib_vs_full": ratio(r["memory"])}
        for variant in ("bn_with_neuron", "last_layers", "sparse_update", "classifier_only"):
            path = unit_path(units_dir, r).with_name(f"memory_{variant}_{label}.json")
            if path.exists():
                m = json.loads(path.read_text())["memory"]
                memory[label][variant] = {**m, "training_kib_vs_full": ratio(m)}
    return {"benchmark": "tools/bench_neq.py" + (" --quick" if quick else ""),
            "settings": json.loads(json.dumps(dataclasses.asdict(settings))),
            "units_done": len(records), "units_total": len(expected), "units_missing": missing,
            "partial": missing > 0, "verdict": verdict, "tables": tables, "device_memory": memory,
            "median_cpu_s": costs, "cpu_s_total": sum(r["cpu_s"] for r in records)}


def cell(values: list) -> dict | None:
    if not values:
        return None
    return {"mean": statistics.mean(values), "std": statistics.pstdev(values), "n": len(values)}


def paired(records: list, a: tuple, b: tuple) -> dict | None:
    """Paired difference (points) a - b over the seeds both have; a, b are (table, method, budget)."""
    def by_seed(table, method, budget):
        return {r["seed"]: r["test_accuracy"] for r in records
                if (r["table"], r["method"], r["budget"]) == (table, method, budget)}
    left, right = by_seed(*a), by_seed(*b)
    seeds = sorted(set(left) & set(right))
    if not seeds:
        return None
    diffs = [100 * (left[s] - right[s]) for s in seeds]
    mean, low, high = ci95(diffs)
    sd = statistics.stdev(diffs) if len(diffs) > 1 else None
    return {"mean": mean, "ci95": [low, high], "n": len(seeds), "sd": sd, "seeds_needed": seeds_needed(mean, sd)}


def seeds_needed(mean: float, sd: float | None) -> int | None:
    """Paired seeds for the 95% interval to exclude zero if the mean and spread stayed as measured
    (None when the mean is not above zero or there is no spread yet)."""
    if sd is None or mean <= 0:
        return None
    if sd == 0:
        return 2
    return next(n for n in range(2, 100_000) if half_width(sd, n) < mean)


def task_table(records: list, arm: Arm) -> dict:
    def accs(table, method, budget):
        return [r["test_accuracy"] for r in records
                if (r["table"], r["method"], r["budget"]) == (table, method, budget)]

    def spent(table, method, budget):
        return [r["selection"].get(f"{PLUGIN[method][0]}_fraction") for r in records
                if (r["table"], r["method"], r["budget"]) == (table, method, budget)]

    budgets = [f"{b:g}" for b in arm.budgets]
    out = {"full": cell(accs("paper", "full", 1.0)), "classifier_only": cell(accs("paper", "classifier_only", None)),
           "paper": {m: {k: cell(accs("paper", m, b)) for k, b in zip(budgets, arm.budgets)} for m in PAPER_METHODS},
           "equal": {m: {k: cell(accs("equal", m, b)) for k, b in zip(budgets, arm.budgets)} for m in EQUAL_METHODS},
           "spent_fraction": {m: {k: cell([s for s in spent("paper", m, b) if s is not None])
                                  for k, b in zip(budgets, arm.budgets)} for m in PAPER_METHODS},
           "best_val_epoch": cell([r["best_val_epoch"] for r in records if r["best_val_epoch"]]),
           "val_gain_last_5_epochs": cell([100 * (r["val_accuracy"][-1] - r["val_accuracy"][-6]) for r in records
                                           if len(r["val_accuracy"]) >= 6])}
    out["velocity_minus_random"] = {
        v: {k: paired(records, ("paper", v, b), ("paper", "random", b)) for k, b in zip(budgets, arm.budgets)}
        for v in ("velocity_per_cost", "velocity")}

    def recovered(v, k):   # (velocity - random) / (full - random): the share of random's gap to full
        vel, rnd = out["paper"][v][k], out["paper"]["random"][k]
        if not (vel and rnd and out["full"]) or out["full"]["mean"] <= rnd["mean"]:
            return None
        return (vel["mean"] - rnd["mean"]) / (out["full"]["mean"] - rnd["mean"])

    out["room_recovered"] = {v: {k: recovered(v, k) for k in budgets} for v in ("velocity_per_cost", "velocity")}
    out["equal_budget"] = {
        "velocity_minus_random": {k: paired(records, ("equal", "velocity_per_cost", b), ("equal", "random", b))
                                  for k, b in zip(budgets, arm.budgets)},
        "velocity_minus_sparse_update": {
            k: paired(records, ("equal", "velocity_per_cost", b), ("paper", "sparse_update", b))
            for k, b in zip(budgets, arm.budgets)}}
    return out


def task_verdict(table: dict, arm_name: str, arm: Arm) -> dict:
    """Per velocity variant, over the budgets with a paired interval: where it is above zero
    (better), where its upper end is at or above zero (not worse), where the mean difference is
    at or above zero; the headline uses the variant that is better at more budgets."""
    variants = {}
    for v, diffs in table["velocity_minus_random"].items():
        known = {b: d for b, d in diffs.items() if d and d["ci95"][0] is not None}
        near = min(arm.budgets, key=lambda b: abs(b - 0.27))
        at = table["paper"][v][f"{near:g}"] if abs(near - 0.27) <= 0.05 else None
        variants[v] = {"velocity_better": sum(d["ci95"][0] > 0 for d in known.values()),
                       "velocity_not_worse": sum(d["ci95"][1] >= 0 for d in known.values()),
                       "velocity_mean_at_least_random": sum(d["mean"] >= 0 for d in known.values()),
                       "budgets_with_interval": len(known),
                       "gap_to_full_at_27": (100 * (at["mean"] - table["full"]["mean"])
                                             if at and table["full"] else None)}
    best = max(variants, key=lambda v: (variants[v]["velocity_better"], variants[v]["velocity_not_worse"]))
    seeds = table["full"]["n"] if table["full"] else 0
    return {"model": arm_name, "seeds": seeds, "budgets": list(arm.budgets), "variant": best, **variants[best],
            "variants": variants}


# ---------------------------------------------------------------- report and plot


def report(result: dict) -> None:
    print(f"\n{result['units_done']} of {result['units_total']} units"
          + (f" ({result['units_missing']} missing: partial)" if result["partial"] else ""))
    for key, table in result["tables"].items():
        v = result["verdict"][key]
        print(f"\n{key}: test accuracy %, mean +- std (n seeds)")
        print("budget " + "".join(f"{m:>24}" for m in PAPER_METHODS) + "   velocity-random (95% CI)")
        for b in table["paper"]["random"]:
            cells = [table["paper"][m][b] for m in PAPER_METHODS]
            d = table["velocity_minus_random"][v["variant"]][b]
            print(f"{100 * float(b):5.0f}% " + "".join(
                f"{100 * c['mean']:14.2f} +- {100 * c['std']:4.2f} ({c['n']})" if c else f"{'-':>24}" for c in cells)
                + (f"   {d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
                   if d and d["ci95"][0] is not None else ""))
        shares = {b: r for b, r in table["room_recovered"][v["variant"]].items() if r is not None}
        if shares:
            print(f"share of random's gap to full fine-tuning that velocity ({v['variant']}) recovers: "
                  + ", ".join(f"{100 * float(b):g}%: {r:.0%}" for b, r in shares.items()))
        for ref in ("full", "classifier_only"):
            if table[ref]:
                print(f"{ref}: {100 * table[ref]['mean']:.2f} +- {100 * table[ref]['std']:.2f} ({table[ref]['n']})")
        for name, diffs in table["equal_budget"].items():
            known = {b: d for b, d in diffs.items() if d}
            if known:
                print(f"at Sparse Update's spend, {name.replace('_minus_', ' - ')} (points, 95% CI): " + ", ".join(
                    f"{100 * float(b):g}%: {d['mean']:+.2f}" + (f" [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
                                                                if d["ci95"][0] is not None else "")
                    for b, d in known.items()))
        gap = v["gap_to_full_at_27"]
        print(f"VERDICT {key}: velocity ({v['variant']}) better than random (95% interval above 0) at "
              f"{v['velocity_better']} of {v['budgets_with_interval']} budgets, not worse at "
              f"{v['velocity_not_worse']}; at ~27% it is {'n/a' if gap is None else f'{gap:+.2f}'} points "
              f"from full fine-tuning ({v['seeds']} seeds)")
    for budget, m in result["device_memory"].items():
        ratio = m["training_kib_vs_full"]
        print(f"LiteRT training memory at {100 * float(budget):g}%: {m['training_kib']} KiB"
              + ("" if ratio is None else f" ({ratio:.2f}x full)")
              + f", {m['trained_parameters']:,} of {m['trainable_parameters']:,} parameters train")
        for variant in ("bn_with_neuron", "last_layers", "sparse_update", "classifier_only"):
            if variant in m:
                v = m[variant]
                print(f"  {variant} on the same model: {v['training_kib']} KiB ({v['training_kib_vs_full']:.2f}x "
                      f"full), {v['trained_parameters']:,} parameters train")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(result["tables"])
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        table = result["tables"][key]
        for i, method in enumerate(PAPER_METHODS):
            rows = [(float(b), c) for b, c in table["paper"][method].items() if c]
            if rows:   # methods side by side around each budget
                ax.errorbar([100 * b * (1 + 0.02 * (i - 1.5)) for b, _ in rows], [100 * c["mean"] for _, c in rows],
                            yerr=[100 * c["std"] for _, c in rows], marker="o", capsize=3, label=method)
        schemes = table.get("sparse_update_schemes", {})
        for method, marker in (("velocity_per_cost", "^"), ("random", "v")):
            rows = [(schemes[b]["fraction"], c) for b, c in table["equal"][method].items() if c and b in schemes]
            if rows:
                ax.errorbar([100 * f for f, _ in rows], [100 * c["mean"] for _, c in rows],
                            yerr=[100 * c["std"] for _, c in rows], marker=marker, linestyle="none", capsize=3,
                            label=f"{method} at SU's spend")
        for ref, style in (("full", "--"), ("classifier_only", ":")):
            if table[ref]:
                ax.axhline(100 * table[ref]["mean"], linestyle=style, color="grey", label=ref)
        ax.set_xscale("log")
        ticks = [100 * float(b) for b in table["paper"]["random"]]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlim(0.8 * min(ticks), 1.2 * max(ticks))
        ax.set_xlabel("budget (% of convolution parameters)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{key}: mean and std over seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if result["partial"]:
        fig.suptitle(f"partial: {result['units_done']} of {result['units_total']} units")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=Path, default=ROOT / "docs" / "benchmarks" / "neq_units",
                        help="folder of the finished units (small JSONs, committed)")
    parser.add_argument("--json", type=Path, help="report (default docs/benchmarks/neq.json; "
                        "neq_<name>.json with --experiment)")
    parser.add_argument("--png", type=Path, help="plot (default: the report's name, .png)")
    parser.add_argument("--scratch", type=Path, default=ROOT / "bench_results" / "neq",
                        help="stage cache and exported models (not committed)")
    parser.add_argument("--quick", action="store_true", help="smoke version on tiny data (the test suite runs it)")
    parser.add_argument("--assemble", action="store_true", help="only assemble the JSON and PNG from the units")
    parser.add_argument("--experiment", choices=sorted(EXPERIMENTS),
                        help="an extra experiment instead of the grid (report: neq_<name>.json)")
    parser.add_argument("--max-units", type=int, default=0, help="stop after this many new units (0: no limit)")
    parser.add_argument("--child-memory", nargs=3, metavar=("MODEL", "DATA", "STEPS"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child_memory:
        return child_memory(args.child_memory[0], args.child_memory[1], int(args.child_memory[2]))
    settings = QUICK if args.quick else EXPERIMENTS[args.experiment] if args.experiment else FULL
    args.json = args.json or ROOT / "docs" / "benchmarks" / (f"neq_{args.experiment}.json" if args.experiment
                                                             else "neq.json")
    args.png = args.png or args.json.with_suffix(".png")
    os.environ.setdefault("KERAS_EDGE_CACHE", str(args.scratch / "cache"))
    done = 0
    if not args.assemble:
        todo = [u for u in unit_list(settings) if not unit_path(args.units, u).exists()]
        print(f"{len(todo)} units to run, {len(unit_list(settings)) - len(todo)} already done", flush=True)
        raws, found = {}, {}
        for unit in todo:
            if args.max_units and done >= args.max_units:
                break
            arm = settings.arms[unit["model"]]
            raw = raws.setdefault(unit["model"], base_recipe(settings, arm))
            key = (unit["model"], unit["task"])
            if key not in found and ("sparse_update" in arm.paper_methods or arm.equal_methods):
                found[key] = search(raw, settings, arm, unit["task"], args.units / unit["model"] / unit["task"]
                                    / "search.json")
            record = run_unit(unit, raw, settings, found.get(key), args.scratch)
            write_json(unit_path(args.units, unit), record)
            done += 1
            print(f"unit {unit}: test accuracy {record['test_accuracy']:.4f}, {record['cpu_s']:.1f} CPU-s", flush=True)
            done += memory_variants(args.units, settings, args.scratch)
    result = assemble(settings, args.units, args.quick)
    result["new_units_this_call"] = done
    if args.experiment:
        result["benchmark"] += f" --experiment {args.experiment}"
    write_json(args.json, result)
    plot(result, args.png)
    report(result)
    print(f"wrote {args.json} and {args.png}")
    return 0


if __name__ == "__main__":
    # Only the plugins measured (set here, not at import: tests import this module).
    os.environ.setdefault("KERAS_EDGE_PLUGINS", "neq_velocity,neq_random,sparse_update,classifier_only")
    sys.exit(main())
