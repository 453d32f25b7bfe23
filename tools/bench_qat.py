#!/usr/bin/env python3
"""Benchmark: does quantisation-aware training beat post-training quantisation at equal
training cost?

    python tools/bench_qat.py runs/qat_small_cnn runs/qat_mobilenet_v2 --epochs 1 --seeds 0 1 2 \\
        --out runs/bench_qat

For each finished run (its model.keras and recipe.toml): the float model and plain
post-training int8 (PTQ, 256 calibration images) once; then per seed, paired (the same
tf_keras twin, data order and Adam at --learning-rate for --epochs epochs): ``qat`` (tfmot fake
quantisation, then int8) and ``finetune_ptq`` (the same fine-tuning in float, then PTQ
on the same calibration images), so that QAT is compared with PTQ after as much
training. Accuracy on the run's test set in LiteRT; cost in CPU seconds of this process.
Each unit is written at once to OUT/units/*.json and skipped when the command runs
again; bench_qat.json (with the ``verdict``) and bench_qat.png are assembled from the
units there are, saying how many are missing. ``--quick`` runs a tiny synthetic run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

CALIBRATION = 256


def unit_path(out, run, name):
    return Path(out) / "units" / f"{Path(run).name}__{name}.json"


def run_units(run, out, epochs, seeds, learning_rate):
    """Measure every missing unit of one run."""
    import keras

    from keras_edge.data import load_data, to_float
    from keras_edge.export.qat import qat_int8_model
    from keras_edge.export.quantize import inference_model, litert_accuracy
    from keras_edge.export.trainer_module import TrainerModule
    from keras_edge.recipe import load_recipe

    data_config = load_recipe(Path(run) / "recipe.toml").stages[-1].data
    data = load_data(data_config)
    model = keras.saving.load_model(Path(run) / "model.keras", compile=False)
    x_train = to_float(data.x_train)
    x_test = to_float(data.x_test)
    calibration = x_train[np.random.default_rng(0).permutation(len(x_train))[:CALIBRATION]]

    def measure(name, build):
        path = unit_path(out, run, name)
        if path.is_file():
            return
        start = time.process_time()
        tflite = build()
        result = {"run": str(run), "unit": name, "bytes": len(tflite), "cpu_seconds": time.process_time() - start,
                  "test_accuracy": litert_accuracy(tflite, x_test, data.y_test), "test_images": int(len(x_test))}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result), flush=True)

    module = TrainerModule(model, batch_size=data_config.batch_size)
    measure("float", lambda: inference_model(module))
    measure("ptq", lambda: inference_model(module, calibration))
    for seed in seeds:
        for method, aware in (("qat", True), ("finetune_ptq", False)):
            measure(f"{method}_seed{seed}", lambda aware=aware, seed=seed: qat_int8_model(
                model, x_train, data.y_train, epochs=epochs, batch_size=data_config.batch_size, seed=seed,
                learning_rate=learning_rate,
                check_images=x_test[:64], quantisation_aware=aware, calibration_images=calibration)[0])


def assemble(runs, out, epochs, seeds, learning_rate=1e-5):
    """bench_qat.json from the units there are; the verdict per run: QAT minus PTQ after
    equal fine-tuning, paired by seed (mean and 95% interval)."""
    from scipy import stats

    report = {"epochs": epochs, "seeds": list(seeds), "learning_rate": learning_rate, "calibration_images": CALIBRATION,
              "runs": {}, "verdict": {}}
    missing = 0
    for run in runs:
        units = {}
        names = ["float", "ptq"] + [f"{m}_seed{s}" for s in seeds for m in ("qat", "finetune_ptq")]
        for name in names:
            path = unit_path(out, run, name)
            if path.is_file():
                units[name] = json.loads(path.read_text())
            else:
                missing += 1
        paired = [units[f"qat_seed{s}"]["test_accuracy"] - units[f"finetune_ptq_seed{s}"]["test_accuracy"]
                  for s in seeds if f"qat_seed{s}" in units and f"finetune_ptq_seed{s}" in units]
        entry = {"units": units, "qat_minus_finetune_ptq": paired}
        if len(paired) >= 2:
            mean, sem = float(np.mean(paired)), float(stats.sem(paired))
            half = float(stats.t.ppf(0.975, len(paired) - 1) * sem) if sem > 0 else 0.0
            entry.update(mean_difference=mean, ci95=[mean - half, mean + half])
            verdict = "qat better" if mean - half > 0 else "finetune_ptq better" if mean + half < 0 else "no difference shown"
        else:
            verdict = "too few seeds"
        report["runs"][Path(run).name] = entry
        report["verdict"][Path(run).name] = verdict
    report["verdict"]["units_missing"] = missing
    return report


def plot(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["runs"])
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(5 * max(1, len(names)), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        units = report["runs"][name]["units"]
        labels, values = [], []
        for key, label in (("float", "float"), ("ptq", "PTQ")):
            if key in units:
                labels.append(label)
                values.append(units[key]["test_accuracy"])
        for method, label in (("finetune_ptq", "fine-tune + PTQ"), ("qat", "QAT")):
            accs = [u["test_accuracy"] for k, u in units.items() if k.startswith(method + "_seed")]
            if accs:
                labels.append(label)
                values.append(float(np.mean(accs)))
                ax.scatter([len(labels) - 1] * len(accs), accs, color="black", s=10, zorder=3)
        ax.bar(range(len(values)), values)
        ax.set_xticks(range(len(values)), labels)
        if values:
            ax.set_ylim(min(values) - 0.01, max(values) + 0.005)
        ax.set_title(name)
        ax.set_ylabel("test accuracy (LiteRT)")
    fig.suptitle(f"int8: PTQ vs QAT ({report['epochs']} epoch(s) at Adam {report['learning_rate']:g}, "
                 f"seeds {report['seeds']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def quick_run(folder):
    """A tiny finished run (synthetic 12x12 images, small_cnn) for --quick."""
    import keras

    from keras_edge.models import build_model
    from keras_edge.recipe import parse_recipe

    recipe = ('[data]\nname = "synthetic"\nsynthetic_shape = [12, 12, 1]\nsynthetic_examples = 96\n'
              'synthetic_classes = 3\nbatch_size = 16\n\n[model]\nname = "small_cnn"\nwidth = 0.125\n')
    keras.utils.set_random_seed(0)
    build_model(parse_recipe(recipe).model, (12, 12, 1), 3).save(folder / "model.keras")
    (folder / "recipe.toml").write_text(recipe)
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="finished run folders")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--learning-rate", type=float, default=1e-5, help="Adam rate of both fine-tunings (default: the export's)")
    parser.add_argument("--out", default="runs/bench_qat")
    parser.add_argument("--assemble-only", action="store_true", help="only assemble the units there are")
    parser.add_argument("--quick", action="store_true", help="one seed on a tiny synthetic run (for the tests)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    runs = args.runs
    if args.quick:
        folder = Path(args.out) / "quick_run"
        folder.mkdir(parents=True, exist_ok=True)
        runs, args.seeds = [str(quick_run(folder))], [0]
    if not runs:
        parser.error("name at least one run folder (or --quick)")
    if not args.assemble_only:
        for run in runs:
            run_units(run, args.out, args.epochs, args.seeds, args.learning_rate)
    report = assemble(runs, args.out, args.epochs, args.seeds, args.learning_rate)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_qat.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "bench_qat.png")
    print(json.dumps(report["verdict"], indent=2))
    return report


if __name__ == "__main__":
    main()
