"""Why keras-edge does not fuse BatchNorm under op determinism: per-step losses of a small VGG
trained with the fused op and with Keras's own ops, with and without op determinism and
TensorFlow's oneDNN kernels, each in a process of its own.

    python tools/fused_bn_determinism.py      # writes docs/benchmarks/fused_bn_determinism.json

Every run is the OSG distribute test's model and data (``vgg`` width 0.125, 192 synthetic 12x12
images, SGD with momentum, 6 steps); the reference is Keras's ops without determinism.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

RUNS = list(itertools.product((True, False), (True, False), (True, False)))  # fused, deterministic, oneDNN


def worker(fused: bool, deterministic: bool) -> dict:
    """Train one epoch; the per-step losses and the weights after each step."""
    import numpy as np

    from keras_edge import hookimpl
    from keras_edge.models import batch_norm
    from keras_edge.testing import run_with_plugins

    batch_norm.fused_allowed = lambda: fused  # the experiment decides, not the determinism rule
    losses, weights = [], []

    class Record:
        @hookimpl
        def on_step_end(self, ctx, metrics):
            losses.append(float(metrics["loss"]))
            weights.append({v.path: v.numpy() for v in ctx.model.trainable_weights})

    run_with_plugins({"record": Record()}, model={"name": "vgg", "width": 0.125},
                     train={"epochs": 1, "deterministic": deterministic, "optimizer": "sgd", "momentum": 0.9})
    np.savez(os.environ["FUSED_BN_WEIGHTS"], **{f"{i}/{k}": v for i, w in enumerate(weights) for k, v in w.items()})
    return {"losses": losses}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/fused_bn_determinism.json"))
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*map(bool, args.worker))))
        return
    import tempfile

    import numpy as np

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fused, deterministic, onednn in RUNS:
            name = f"{'fused' if fused else 'keras'}, determinism {'on' if deterministic else 'off'}, " \
                   f"oneDNN {'on' if onednn else 'off'}"
            path = Path(tmp) / f"{len(results)}.npz"
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": str(int(onednn)), "FUSED_BN_WEIGHTS": str(path)}
            out = subprocess.run([sys.executable, __file__, "--worker", str(int(fused)), str(int(deterministic))],
                                 env=env, capture_output=True, text=True, check=True).stdout
            results[name] = {**json.loads(out.strip().splitlines()[-1]), "weights": dict(np.load(path))}
            print(name, " ".join(f"{x:.5f}" for x in results[name]["losses"]), flush=True)
    reference = results["keras, determinism off, oneDNN on"]
    rows = {}
    for name, result in results.items():
        gaps = {}
        for key, value in result["weights"].items():
            step, variable = key.split("/", 1)
            gaps.setdefault(int(step) + 1, {})[variable] = float(np.abs(value - reference["weights"][key]).max())
        rows[name] = {"losses": result["losses"],
                      "loss_gap": max(abs(a - b) for a, b in zip(result["losses"], reference["losses"])),
                      "weight_gap_after_step": {s: max(g.values()) for s, g in gaps.items()},
                      "largest_weight_gaps_after_step_2": dict(sorted(gaps[2].items(), key=lambda kv: -kv[1])[:4])}
    verdict = {name: row["loss_gap"] < 1e-4 for name, row in rows.items()}
    args.out.write_text(json.dumps({"verdict": {"matches_keras_ops": verdict}, "runs": rows}, indent=1) + "\n")
    for name, row in rows.items():
        print(f"{name}: largest loss gap {row['loss_gap']:.2e}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
