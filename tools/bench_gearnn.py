"""GEARnn cost-to-accuracy benchmark: accuracy (clean and under corruptions) after every epoch
against cumulative CPU-seconds, training MACs and wall time, per method and seed.

Methods are the recipes augmix_baseline (full-size network, AugMix, until validation stops
improving), gearnn_2phase, gearnn_1phase and growth_mshot. Each unit (method x seed) runs
in this process, evaluates after every epoch and is written at once to
``UNITS/<method>-seed<k>.json``; a unit already there (for the same setting) is skipped, so
the command resumes. The report (``--out`` JSON with a ``verdict`` and a PNG) is assembled
from whatever units exist and says which are missing.

    nice -n 10 python tools/bench_gearnn.py                      # the full run (~3 CPU-hours)
    python tools/bench_gearnn.py --assemble-only                 # report from the units so far
    python tools/bench_gearnn.py --quick --units /tmp/u --out /tmp/g.json   # smoke version

Cost is the process's CPU-seconds (training, augmentation, growth and validation; the
per-epoch test and corruption evaluation of this benchmark is excluded), training MACs
(3 x forward MACs per image, views included; growth scoring not counted) and wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_edge import hookimpl  # noqa: E402  (after the environment above)

ROOT = pathlib.Path(__file__).resolve().parents[1]
METHODS = {"baseline": ("augmix_baseline", []), "gearnn2": ("gearnn_2phase", []),
           "gearnn1": ("gearnn_1phase", []), "mshot": ("growth_mshot", []),
           "gearnn2_uniform": ("gearnn_2phase", ["plugins.osg.strategy=uniform"]),
           "baseline_era": ("augmix_baseline", ["plugins.era.width=1", "plugins.era.views=4"])}
"""Method -> (recipe, overrides). The first four are the benchmark; two extra experiments run on
request: ``gearnn2_uniform`` (GEARnn-2 with one width multiplier instead of cross-layer growth) and
``baseline_era`` (the full-size baseline with ERA's (W, D, J) = (1, 3, 4) instead of AugMix's)."""
DEFAULT_METHODS = ("baseline", "gearnn2", "gearnn1", "mshot")
FULL = {"limit": 30000, "corruption_examples": 2000, "test_limit": 0, "seeds": 2, "overrides": []}
QUICK = {"limit": 700, "corruption_examples": 10, "test_limit": 200, "seeds": 1, "overrides": {
    "baseline": ["stages.0.epochs=2"],
    "gearnn2": ["stages.0.epochs=2", "stages.1.epochs=1", "plugins.osg.grow_after=1", "plugins.osg.examples=32"],
    "gearnn1": ["stages.0.epochs=2", "plugins.osg.grow_after=1", "plugins.osg.examples=32"],
    "mshot": ["stages.0.epochs=2", "stages.1.epochs=1", "plugins.osg.grow_after=1", "plugins.osg.every=1",
              "plugins.osg.shots=2", "plugins.osg.examples=32"],
    "gearnn2_uniform": ["stages.0.epochs=2", "stages.1.epochs=1", "plugins.osg.grow_after=1",
                        "plugins.osg.examples=32"],
    "baseline_era": ["stages.0.epochs=2"]}}
MARGIN = 0.01  # "within 1 point"


# ---------------------------------------------------------------- measuring


class Evaluator:
    """Clean accuracy on the test split and mean accuracy over 15 corruptions x 5 severities
    on a fixed seeded subset of it (the corrupted sets are generated once and cached)."""

    def __init__(self, x_test, y_test, examples, seed=0):
        import numpy as np

        from keras_edge_gearnn.corruptions import CORRUPTIONS
        from keras_edge_gearnn.robustness import corrupted_set

        cache = os.path.join(os.environ.get("KERAS_EDGE_CACHE", os.path.expanduser("~/.cache/keras-edge")),
                             "corruptions")
        pick = np.sort(np.random.default_rng(seed).permutation(len(x_test))[:examples])
        self.x_test, self.y_test = x_test, np.asarray(y_test)
        self.labels = self.y_test[pick]
        self.names = list(CORRUPTIONS)
        self.corrupted = np.concatenate([corrupted_set(x_test[pick], n, seed, cache).reshape(-1, *x_test.shape[1:])
                                         for n in self.names])  # (15 * 5 * N, H, W, C), corruption-major
        self.examples = len(pick)

    def __call__(self, model) -> dict:
        import numpy as np
        import tensorflow as tf

        predict = tf.function(lambda b: tf.argmax(model(b, training=False), axis=-1), reduce_retracing=True)

        def predicted(images):
            return np.concatenate([predict(tf.constant(images[i:i + 1000], tf.float32) / 255.0).numpy()
                                   for i in range(0, len(images), 1000)])

        clean = float(np.mean(predicted(self.x_test) == self.y_test))
        correct = (predicted(self.corrupted).reshape(len(self.names), 5, -1) == self.labels).astype(np.float64)
        per_image = correct.mean(axis=(0, 1))
        return {"clean": clean, "robust": float(per_image.mean()),
                "robust_se": float(per_image.std(ddof=1) / math.sqrt(len(per_image))),
                "table": {n: [round(float(a), 4) for a in row] for n, row in zip(self.names, correct.mean(axis=2))}}


class CurveProbe:
    """Autouse plugin: after every epoch, the cumulative cost so far and the accuracies.

    The CPU and wall time of its own evaluation are subtracted from the cost. Its log
    (``curve_probe.json`` in the run folder, written at every epoch's start and end) lets an
    interrupted unit resume from the run's last checkpoint: the rows of the epochs done and
    the cost counted when the next epoch started (growth and checkpointing included)."""

    autouse = True

    def __init__(self, evaluate, log, resume_epochs=None):
        self.evaluate, self.log, self.rows, self.macs, self.growth, self.starts = evaluate, log, [], 0, [], {}
        self.offset_cpu = self.offset_wall = 0.0
        if resume_epochs is not None:
            saved = json.loads(log.read_text())
            self.rows = saved["rows"][:resume_epochs]
            last = self.rows[-1] if self.rows else {"cpu_s": 0.0, "wall_s": 0.0, "train_macs": 0}
            start = saved["starts"].get(str(resume_epochs), [last["cpu_s"], last["wall_s"], last["train_macs"]])
            self.offset_cpu, self.offset_wall, self.macs = start
            self.starts = {int(k): v for k, v in saved["starts"].items() if int(k) <= resume_epochs}
        self.cpu0, self.wall0, self.excluded_cpu, self.excluded_wall = time.process_time(), time.perf_counter(), 0, 0

    def cost(self):
        return (self.offset_cpu + time.process_time() - self.cpu0 - self.excluded_cpu,
                self.offset_wall + time.perf_counter() - self.wall0 - self.excluded_wall)

    def save(self):
        partial = self.log.with_suffix(".tmp")
        partial.write_text(json.dumps({"rows": self.rows, "starts": self.starts}))
        partial.replace(self.log)

    @hookimpl
    def on_run_end(self, ctx):
        self.growth = ctx.scratch.get("osg", [])

    @hookimpl
    def on_epoch_start(self, ctx):
        self.starts[len(self.rows)] = [*self.cost(), self.macs]
        self.save()

    @hookimpl
    def on_epoch_end(self, ctx, logs):
        from keras_edge.models import count_macs, count_params

        era = ctx.stage.options.get("era") if "era" in ctx.stage.plugins else None
        images = 1 + (era.views - 1 if era is not None and era.views > 1 else 0)
        self.macs += 3 * images * ctx.steps_per_epoch * ctx.stage.data.batch_size * count_macs(ctx.model)
        cpu, wall = self.cost()
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = self.evaluate(ctx.model)
        self.excluded_cpu += time.process_time() - start_cpu
        self.excluded_wall += time.perf_counter() - start_wall
        self.rows.append({"stage": ctx.stage.name, "epoch": ctx.epoch + 1, "robust_training": era is not None,
                          "params": count_params(ctx.model), "cpu_s": cpu, "wall_s": wall, "train_macs": self.macs,
                          "val_accuracy": logs.get("val_accuracy"), "clean": result["clean"],
                          "robust": result["robust"], "robust_se": result["robust_se"], "table": result["table"]})
        self.save()
        print(f"  {ctx.stage.name} {ctx.epoch + 1}: cpu {cpu:.0f} s, clean {100 * result['clean']:.2f}, "
              f"robust {100 * result['robust']:.2f}", flush=True)


def run_unit(method, seed, setting, evaluate, work) -> dict:
    """Train one unit, resuming its run folder when an earlier attempt left checkpoints and a probe log."""
    from keras_edge.checkpoint import list_checkpoints
    from keras_edge.recipe import load_recipe, to_toml
    from keras_edge.runner import run_recipe

    overrides = [f"data.limit={setting['limit']}", f"data.test_limit={setting['test_limit']}",
                 f"train.seed={seed}", "plugins.corruptions.at_run_end=false"]
    extra = setting["overrides"]
    overrides += extra.get(method, []) if isinstance(extra, dict) else extra
    recipe_name, method_overrides = METHODS[method]
    overrides += method_overrides + ([f"plugins.osg.seed={seed}"] if recipe_name != "augmix_baseline" else [])
    recipe = load_recipe(ROOT / "recipes" / f"{recipe_name}.toml", overrides=overrides)
    folder = work / f"{method}-seed{seed}"
    log = folder / "curve_probe.json"
    found = list_checkpoints(folder / "checkpoints")
    saved = folder / "recipe.toml"
    resume = bool(found) and log.exists() and saved.exists() and saved.read_text() == to_toml(recipe.to_dict())
    done = len(json.loads((found[-1] / "state.json").read_text())["history"]) if resume else None
    if resume:
        print(f"  resuming after {done} epochs", flush=True)
    probe = CurveProbe(evaluate, log, done)
    summary = run_recipe(recipe, folder, resume=resume, force=not resume, extra_plugins={"curve_probe": probe})
    rows = [dict(row) for row in probe.rows]
    for row in rows[:-1]:
        row.pop("table", None)  # the full table only for the last epoch
    return {"method": method, "recipe": recipe_name, "seed": seed, "setting": setting, "curve": rows,
            "final_params": summary["params"], "loop_train_macs": summary["train_macs"],
            "growth": probe.growth, "overrides": overrides}


def augmentation_share(images, batch_size=128, batches=12) -> dict:
    """CPU-seconds per batch of ERA (1,3,4) and AugMix (3,3,3) in tf.data, and their share of a
    training step of the full-size network on the same batch (views included)."""
    import keras
    import tensorflow as tf

    from keras_edge.models import vgg
    from keras_edge_gearnn.augmix import augment_and_mix

    result = {}
    for name, (w, d, j) in {"era": (1, 3, 4), "augmix": (3, 3, 3)}.items():
        ds = tf.data.Dataset.from_tensor_slices(images).batch(batch_size, drop_remainder=True).repeat()
        ds = ds.map(lambda x: tf.cast(x, tf.float32) / 255.0)
        ds = ds.map(lambda x, w=w, d=d, j=j: tf.concat([x[None], augment_and_mix(x, [0, 1], w, d, views=j - 1)], 0))
        it = iter(ds)
        batch = next(it)
        start = time.process_time()
        for _ in range(batches):
            batch = next(it)
        augment = (time.process_time() - start) / batches
        model = vgg(tuple(images.shape[1:]), 10, width=0.5)
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
        flat = tf.reshape(batch, [-1, *images.shape[1:]])
        labels = tf.zeros([flat.shape[0]], tf.int32)

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

        step(flat, labels)
        start = time.process_time()
        for _ in range(batches):
            step(flat, labels)
        train = (time.process_time() - start) / batches
        result[name] = {"augment_cpu_s_per_batch": augment, "train_step_cpu_s": train,
                        "share": augment / (augment + train)}
    result["batch_size"] = batch_size
    return result


def step_costs(grown_widths, batch_size=128, reps=8) -> dict:
    """CPU-seconds of one training step: the baseline's widths with AugMix's 3 images per
    sample and ERA's 4, and ``grown_widths`` with ERA's 4 (where a GEARnn epoch's cost goes)."""
    import keras
    import tensorflow as tf

    from keras_edge.models import count_macs, vgg

    def cost(widths, images):
        model = vgg((28, 28, 1), 10, widths=widths, bn_momentum=0.9)
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
        x, y = tf.random.uniform([images, 28, 28, 1]), tf.zeros([images], tf.int32)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

        step()
        start = time.process_time()
        for _ in range(reps):
            step()
        return {"widths": list(widths), "images": images, "macs_per_image": count_macs(model),
                "cpu_s_per_step": (time.process_time() - start) / reps}

    base = [16, 16, 32, 32, 64, 64]  # vgg width 0.5, the baseline
    return {"baseline_augmix": cost(base, 3 * batch_size), "baseline_era": cost(base, 4 * batch_size),
            "grown_era": cost(grown_widths, 4 * batch_size)}


# ---------------------------------------------------------------- assembling


def first_match(curve, clean, robust):
    """The first row reaching ``clean`` and ``robust`` (both minus MARGIN), or None."""
    return next((r for r in curve if r["clean"] >= clean - MARGIN and r["robust"] >= robust - MARGIN), None)


def at_cost(curve, cost):
    """The last row whose cumulative CPU-seconds are at most ``cost`` (what that budget buys)."""
    rows = [r for r in curve if r["cpu_s"] <= cost]
    return rows[-1] if rows else None


def epoch_costs(unit) -> dict:
    """Mean CPU-seconds and training MACs per epoch, by kind of epoch (clean or robust, before
    or at the final size): where each method's cost goes."""
    groups, cpu, macs = {}, 0.0, 0
    for r in unit["curve"]:
        kind = ("robust" if r["robust_training"] else "clean") + (
            "_final_size" if r["params"] == unit["final_params"] else "_before_growth")
        groups.setdefault(kind, []).append((r["cpu_s"] - cpu, r["train_macs"] - macs))
        cpu, macs = r["cpu_s"], r["train_macs"]
    return {k: {"epochs": len(v), "cpu_s_per_epoch": sum(c for c, _ in v) / len(v),
                "train_macs_per_epoch": sum(m for _, m in v) / len(v)} for k, v in groups.items()}


def mean_ci(values):
    """Mean and 95% t-interval half-width (None for fewer than two values)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    from scipy import stats

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, float(stats.t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values)))


def assemble(units: dict, setting, seeds, augmentation) -> dict:
    """The report from the finished units ``{(method, seed): unit}``; works on a partial set.

    Accuracies are fractions, gaps and differences in the verdict and ``clean_gap`` /
    ``robust_gap`` are points (percent)."""
    expected = [(m, s) for s in range(seeds) for m in DEFAULT_METHODS]
    missing = [f"{m}-seed{s}" for m, s in expected if (m, s) not in units]
    present = {m for m, _ in units}
    per_seed, headline = {}, {m: [] for m in METHODS if m != "baseline" and (m in DEFAULT_METHODS or m in present)}
    for s in range(seeds):
        base = units.get(("baseline", s))
        if base is None:
            continue
        final = base["curve"][-1]
        per_seed[s] = {"baseline": {"cost": final["cpu_s"], "train_macs": final["train_macs"],
                                    "wall_s": final["wall_s"], "clean": final["clean"], "robust": final["robust"],
                                    "epochs": len(base["curve"])}}
        own = first_match(base["curve"], final["clean"], final["robust"])
        per_seed[s]["baseline"]["cost_to_within_1pt"] = own["cpu_s"]
        for m in headline:
            unit = units.get((m, s))
            if unit is None:
                continue
            hit = first_match(unit["curve"], final["clean"], final["robust"])
            last = unit["curve"][-1]
            entry = {"final_clean": last["clean"], "final_robust": last["robust"], "final_cost": last["cpu_s"],
                     "final_train_macs": last["train_macs"], "final_params": unit["final_params"],
                     "cost_to_match": hit and hit["cpu_s"], "train_macs_to_match": hit and hit["train_macs"],
                     "wall_to_match": hit and hit["wall_s"],
                     "cost_ratio": hit and final["cpu_s"] / hit["cpu_s"],
                     "macs_ratio": hit and final["train_macs"] / hit["train_macs"],
                     "clean_gap": hit and 100 * (final["clean"] - hit["clean"]),
                     "robust_gap": hit and 100 * (final["robust"] - hit["robust"])}
            per_seed[s][m] = entry
            headline[m].append(entry)
    comparisons = {}
    for s in per_seed:
        two, one = units.get(("gearnn2", s)), units.get(("gearnn1", s))
        if two is None or one is None:
            continue
        cost = min(two["curve"][-1]["cpu_s"], one["curve"][-1]["cpu_s"])
        a, b = at_cost(two["curve"], cost), at_cost(one["curve"], cost)
        robust_final = [[r for r in u["curve"] if r["robust_training"] and r["params"] == u["final_params"]]
                        for u in (two, one)]
        k = min(len(robust_final[0]), len(robust_final[1]))
        comparisons[s] = {"equal_cost_cpu_s": cost,
                          "robust_minus_at_equal_cost": a and b and a["robust"] - b["robust"],
                          "clean_minus_at_equal_cost": a and b and a["clean"] - b["clean"],
                          "equal_robust_epochs_at_final_size": k,
                          "robust_minus_at_equal_robust_epochs":
                              robust_final[0][k - 1]["robust"] - robust_final[1][k - 1]["robust"] if k else None}
    summary = {}
    for m, entries in headline.items():
        summary[m] = {key: dict(zip(("mean", "ci95"), mean_ci([e[key] for e in entries])))
                      for key in ("cost_to_match", "cost_ratio", "macs_ratio", "clean_gap", "robust_gap",
                                  "final_clean", "final_robust", "final_cost")}
        summary[m]["seeds_matched"] = sum(e["cost_to_match"] is not None for e in entries)
        summary[m]["seeds"] = len(entries)
    base_cost = mean_ci([p["baseline"]["cost"] for p in per_seed.values()])[0]
    two = headline["gearnn2"]
    all_matched = bool(two) and all(e["cost_to_match"] is not None for e in two)
    two_cost = mean_ci([e["cost_to_match"] for e in two])[0] if all_matched else None
    verdict = {
        "seeds": len(per_seed), "cost_unit": "cpu_s", "baseline_cost": base_cost,
        "gearnn2_cost_to_match": two_cost,
        "cost_ratio": base_cost / two_cost if two_cost else None,
        "clean_gap": mean_ci([e["clean_gap"] for e in two])[0] if all_matched else None,
        "robust_gap": mean_ci([e["robust_gap"] for e in two])[0] if all_matched else None,
        "gearnn2_minus_gearnn1_robust_at_equal_cost":
            mean_ci([c["robust_minus_at_equal_cost"] for c in comparisons.values()])[0],
        "augmentation_share_era": augmentation["era"]["share"] if augmentation else None,
        "targets": {"cost_ratio_at_least": 2.3, "gap_at_most": 1.0, "augmentation_share_at_most": 0.25},
    }
    if verdict["gearnn2_minus_gearnn1_robust_at_equal_cost"] is not None:
        verdict["gearnn2_minus_gearnn1_robust_at_equal_cost"] *= 100  # points
    return {"verdict": verdict, "units_done": len(expected) - len(missing), "units_total": len(expected),
            "units_missing": missing, "setting": setting, "per_seed": per_seed, "summary": summary,
            "gearnn2_vs_gearnn1": comparisons, "augmentation": augmentation,
            "curves": {f"{m}-seed{s}": [{k: v for k, v in r.items() if k != "table"} for r in u["curve"]]
                       for (m, s), u in sorted(units.items())},
            "final_tables": {f"{m}-seed{s}": u["curve"][-1].get("table") for (m, s), u in sorted(units.items())},
            "epoch_costs": {f"{m}-seed{s}": epoch_costs(u) for (m, s), u in sorted(units.items())},
            "growth": {f"{m}-seed{s}": u["growth"] for (m, s), u in sorted(units.items()) if m != "baseline"}}


def plot(report, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = dict(zip(METHODS, ("black", "C0", "C1", "C2", "C4", "C5")))
    for key, curve in report["curves"].items():
        method = key.rsplit("-seed", 1)[0]
        for ax, metric in zip(axes, ("clean", "robust")):
            ax.plot([r["cpu_s"] / 60 for r in curve], [100 * r[metric] for r in curve], "o-", ms=3, lw=1,
                    color=colours[method], label=method if key.endswith("seed0") else None)
    for s, p in report["per_seed"].items():
        for ax, metric in zip(axes, ("clean", "robust")):
            ax.axhline(100 * (p["baseline"][metric] - MARGIN), color="grey", ls=":", lw=0.8)
    for ax, title in zip(axes, ("clean test accuracy", "mean corruption accuracy (15 x 5)")):
        ax.set_xlabel("cumulative training CPU-minutes")
        ax.set_ylabel(f"{title} (%)")
        ax.legend(fontsize=8)
    done = f"{report['units_done']}/{report['units_total']} units"
    fig.suptitle(f"GEARnn vs AugMix baseline, Fashion-MNIST ({done}; dotted: baseline final - 1 point)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(report) -> str:
    """The per-seed headline as a Markdown table (for the method card)."""
    lines = ["| seed | method | final clean % | final robust % | total CPU-s | CPU-s to match | baseline CPU-s / that "
             "| MACs ratio | clean gap | robust gap |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s, p in sorted(report["per_seed"].items()):
        b = p["baseline"]
        lines.append(f"| {s} | baseline | {100 * b['clean']:.2f} | {100 * b['robust']:.2f} | {b['cost']:.0f} | "
                     f"{b['cost_to_within_1pt']:.0f} | 1 | 1 | | |")
        for m in METHODS:
            e = p.get(m) if m != "baseline" else None
            if e is None:
                continue
            hit = e["cost_to_match"] is not None
            fmt = (lambda v, f: format(v, f) if hit else "never")  # noqa: E731
            lines.append(f"| {s} | {m} | {100 * e['final_clean']:.2f} | {100 * e['final_robust']:.2f} | "
                         f"{e['final_cost']:.0f} | {fmt(e['cost_to_match'], '.0f')} | {fmt(e['cost_ratio'], '.2f')} | "
                         f"{fmt(e['macs_ratio'], '.2f')} | {fmt(e['clean_gap'], '.2f')} | {fmt(e['robust_gap'], '.2f')} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def load_units(folder, setting) -> dict:
    units = {}
    for path in sorted(pathlib.Path(folder).glob("*-seed*.json")):
        unit = json.loads(path.read_text())
        if unit.get("setting") == setting:
            units[(unit["method"], unit["seed"])] = unit
        else:
            print(f"skipping {path}: made with another setting", file=sys.stderr)
    return units


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke version (seconds)")
    parser.add_argument("--units", default=str(ROOT / "docs/benchmarks/gearnn_units"), help="folder of unit JSONs")
    parser.add_argument("--out", default=str(ROOT / "docs/benchmarks/gearnn.json"), help="report JSON (PNG beside)")
    parser.add_argument("--work", default=str(ROOT / "bench_results/gearnn"), help="run folders")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=list(METHODS),
                        help="methods to run (gearnn2_uniform, baseline_era: the extra experiments)")
    parser.add_argument("--seeds", type=int, help="seeds (default: 2, quick: 1)")
    parser.add_argument("--assemble-only", action="store_true", help="only build the report from existing units")
    parser.add_argument("--step-costs", metavar="WIDTHS",
                        help="only measure the CPU-seconds of a training step for these comma-separated grown widths "
                             "against the baseline's (with AugMix's and ERA's images per sample) and print JSON")
    args = parser.parse_args(argv)
    if args.step_costs:
        try:
            widths = [int(w) for w in args.step_costs.split(",")]
        except ValueError:
            parser.error(f"--step-costs takes six comma-separated integers, got {args.step_costs!r}")
        if len(widths) != 6:
            parser.error(f"--step-costs takes six widths (vgg's convolutions), got {len(widths)}")
        print(json.dumps(step_costs(widths), indent=1))
        return 0
    setting = dict(QUICK if args.quick else FULL)
    seeds = args.seeds or setting.pop("seeds")
    setting.pop("seeds", None)
    units_dir, out = pathlib.Path(args.units), pathlib.Path(args.out)
    units_dir.mkdir(parents=True, exist_ok=True)
    units = load_units(units_dir, setting)
    aug_path = units_dir / "augmentation.json"
    todo = [(m, s) for s in range(seeds) for m in METHODS if m in args.methods and (m, s) not in units]
    if not args.assemble_only and (todo or not aug_path.exists()):
        from keras_edge.data import load_data
        from keras_edge.recipe import load_recipe

        data = load_data(load_recipe(ROOT / "recipes" / "augmix_baseline.toml", overrides=[
            f"data.limit={setting['limit']}", f"data.test_limit={setting['test_limit']}"]).data)
        if not aug_path.exists():
            aug_path.write_text(json.dumps(augmentation_share(data.x_train[:128 * 4], batches=2 if args.quick else 12),
                                           indent=2))
        if todo:
            evaluate = Evaluator(data.x_test, data.y_test, setting["corruption_examples"])
            for method, seed in todo:
                print(f"unit {method} seed {seed}", flush=True)
                unit = run_unit(method, seed, setting, evaluate, pathlib.Path(args.work))
                path = units_dir / f"{method}-seed{seed}.json"
                partial = path.with_suffix(".tmp")
                partial.write_text(json.dumps(unit, indent=1))
                partial.replace(path)
                units[(method, seed)] = unit
    augmentation = json.loads(aug_path.read_text()) if aug_path.exists() else None
    report = assemble(units, setting, seeds, augmentation)
    report["command"] = "python tools/bench_gearnn.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float))
    plot(report, out.with_suffix(".png"))
    print(markdown(report))
    print(json.dumps(report["verdict"], indent=1))
    print(f"{report['units_done']}/{report['units_total']} units; wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    # Only the plugins measured (set here, not at import: tests import this module).
    os.environ.setdefault("KERAS_EDGE_PLUGINS", "osg,era,corruptions")
    sys.exit(main())
