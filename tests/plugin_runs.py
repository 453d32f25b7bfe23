"""Runs one plugin recipe in a process of its own (for op determinism and logical CPU devices).

    python -m tests.plugin_runs CASE OUT [--epochs N] [--crash-at STAGE EPOCH] [--resume] [--distribute mirrored]

Exits 3 when the simulated crash happened. ``start`` is the tests' side of it (importing
this module also registers the supernet class, so ``weights`` can load its runs).
"""

import argparse
import os
import subprocess
import sys

import keras_edge_deps.supernet  # noqa: F401  (registers the supernet class for loading)

from keras_edge import hookimpl
from keras_edge.distribute import configure_cpu_devices
from keras_edge.errors import PluginError
from keras_edge.plugins import plugin_catalog
from keras_edge.recipe import parse_recipe
from keras_edge.runner import run_recipe
from tests.conftest import tiny

SUPERNET = {"name": "elastic_mobilenet",
            "options": {"stage_widths": [8], "stage_strides": [2], "stage_activations": ["hard_swish"],
                        "head_width": 16, "depths": [1, 2], "kernels": [3, 5], "expands": [2, 3]}}
TRAIN = {"epochs": 4, "deterministic": True, "optimizer": "sgd", "momentum": 0.9}
GROWTH = {"target_params": 6000, "grow_after": 1, "candidates": 2, "examples": 32}

CASES = {
    "neq_velocity": tiny(train=TRAIN, model={"options": {"dropout": 0.0}},
                         plugins={"enable": ["neq_velocity"], "neq_velocity": {"budget": 0.3}}),
    "osg": tiny(train=TRAIN, model={"name": "vgg", "width": 0.125}, plugins={"enable": ["osg"], "osg": GROWTH}),
    "osg_era": tiny(train=TRAIN, model={"name": "vgg", "width": 0.125},
                    stages=[{"name": "grow", "epochs": 2, "plugins": ["osg"]},
                            {"name": "robust", "epochs": 2, "plugins": ["era"]}],
                    plugins={"osg": GROWTH, "era": {"views": 3, "depth": 2}}),
    "deps": tiny(train=TRAIN, model=SUPERNET,
                 plugins={"enable": ["deps"], "deps": {"num_subnets": 3, "epsilon_epochs": 1.0}}),
}


def start(case, out, *args, env=None):
    return subprocess.Popen([sys.executable, "-m", "tests.plugin_runs", case, str(out), *args],
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


class Crash:
    """Fails the run at the start of one epoch, after the previous epoch's checkpoint."""

    autouse = True

    def __init__(self, at):
        self.at = at

    @hookimpl
    def on_epoch_start(self, ctx):
        if (ctx.stage_index, ctx.epoch) == self.at:
            raise RuntimeError("simulated crash")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=CASES)
    parser.add_argument("out")
    parser.add_argument("--crash-at", nargs=2, type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--distribute", default="none")
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args()
    configure_cpu_devices()
    raw = CASES[args.case]
    raw["train"]["distribute"] = args.distribute
    raw["train"]["epochs"] = args.epochs or raw["train"]["epochs"]
    recipe = parse_recipe(raw, catalog={**plugin_catalog(), "crash": None})
    try:
        run_recipe(recipe, args.out, resume=args.resume,
                   extra_plugins={"crash": Crash(tuple(args.crash_at) if args.crash_at else None)})
    except PluginError as exc:
        if "simulated crash" not in str(exc):
            raise
        sys.exit(3)


if __name__ == "__main__":
    main()
