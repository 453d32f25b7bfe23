"""The ``supernet`` plugin: the elastic model, ``evaluate --subnets``, ``search`` and ``pareto-plot``."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import click
import numpy as np

from keras_edge import hookimpl
from keras_edge.errors import KerasEdgeError, RecipeError
from keras_edge_deps.supernet import elastic_mobilenet


@dataclasses.dataclass(frozen=True)
class Options:
    num_samples: int = 40
    """Random subnets evaluated by ``evaluate --subnets`` (the smallest and largest are always added)."""
    calibration_batches: int = 5
    """Training batches used to recalibrate each subnet's BatchNorm statistics."""
    calibration_batch_size: int = 256
    """Examples per calibration batch."""
    split: typing.Literal["test", "val"] = "test"
    """Split on which subnets' accuracy is measured."""
    eval_limit: int = 0
    """Evaluate on the first N examples of the split (0: all)."""
    buckets: int = 6
    """Equal MACs ranges of which the best subnet is reported (paper: 6)."""
    seed: int = 0
    """Seed of the subnet sampling and of the calibration batches."""

    def __post_init__(self):
        for key in ("num_samples", "calibration_batches", "calibration_batch_size", "buckets"):
            if getattr(self, key) < 1:
                raise RecipeError(f"plugins.supernet.{key}: {getattr(self, key)} < 1; use a positive integer")


class SupernetPlugin:
    """Registers ``elastic_mobilenet`` and the once-for-all evaluation and search commands."""

    Options = Options

    @hookimpl
    def register_models(self):
        return {"elastic_mobilenet": elastic_mobilenet}

    @hookimpl
    def evaluate_extra(self, ctx, model, flags, options):
        if not flags.get("subnets"):
            return None
        from keras_edge_deps.pareto import plot_fronts, summary_lines
        from keras_edge_deps.subnets import evaluate_subnets

        if not hasattr(model, "space"):
            raise KerasEdgeError(f"--subnets needs a supernet, but {model.name!r} is not one; train with "
                                 '[model] name = "elastic_mobilenet"')
        report = evaluate_subnets(model, ctx.data, options)
        report["summary"] = summary_lines(report)
        if ctx.run_dir is not None:
            write_json(Path(ctx.run_dir) / "subnets.json", report)
            plot_fronts({Path(ctx.run_dir).name: report}, Path(ctx.run_dir) / "pareto.png")
        return {"subnets": report}

    @hookimpl
    def register_commands(self, cli):
        cli.add_command(search_command)
        cli.add_command(pareto_plot_command)


def write_json(path, data) -> None:
    from keras_edge import io

    io.write_text(path, json.dumps(data, indent=2, default=_plain) + "\n")


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value.tolist()


def load_run(run_dir: Path):
    """The last stage's data and the trained supernet of a finished run."""
    from keras_edge.evaluation import load_run as load_finished_run

    ctx = load_finished_run(run_dir).ctx
    recipe, data, model = ctx.recipe, ctx.data, ctx.model
    if not hasattr(model, "space"):
        raise KerasEdgeError(f"{run_dir / 'model.keras'} is not a supernet; search needs a run trained with "
                             '[model] name = "elastic_mobilenet"')
    return recipe, data, model


@click.command("search")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--max-macs", type=int, default=None, help="Budget: MACs per example.")
@click.option("--max-latency-ms", type=float, default=None,
              help="Budget: median single-image latency in the LiteRT interpreter on this machine.")
@click.option("--population", default=16, show_default=True)
@click.option("--generations", default=6, show_default=True)
@click.option("--eval-limit", default=2000, show_default=True, help="Validation examples per fitness evaluation.")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the subnet (default RUN_DIR/search/subnet.keras).")
def search_command(run_dir, max_macs, max_latency_ms, population, generations, eval_limit, seed, out):
    """Find the most accurate subnet of RUN_DIR's supernet under a budget, without retraining."""
    from keras_edge_deps.extract import calibrate_bn, extract
    from keras_edge_deps.latency import latency_ms
    from keras_edge_deps.search import evolve
    from keras_edge_deps.subnets import calibration_batches, kept_statistics, subnet_accuracy

    if (max_macs is None) == (max_latency_ms is None):
        raise click.UsageError("give exactly one of --max-macs N or --max-latency-ms T")
    _, data, model = load_run(run_dir)
    images, labels = data.x_val[:eval_limit], data.y_val[:eval_limit]
    calibration = calibration_batches(data, 5, 256, seed)
    accuracies, latencies = {}, {}

    def fitness(config):
        key = tuple(config)
        if key not in accuracies:
            with kept_statistics(model):
                accuracies[key] = subnet_accuracy(model, config, calibration, images, labels)
        return accuracies[key]

    def latency(config):
        key = tuple(config)
        if key not in latencies:
            latencies[key] = latency_ms(extract(model, config))
        return latencies[key]

    def feasible(config):
        if max_macs is not None:
            return model.subnet_macs(config) <= max_macs
        return latency(config) <= max_latency_ms

    best, accuracy, history = evolve(model.space, fitness, feasible, np.random.default_rng(seed),
                                     population, generations)
    calibrate_bn(model, best, calibration)
    subnet = extract(model, best)
    out = out or run_dir / "search" / "subnet.keras"
    out.parent.mkdir(parents=True, exist_ok=True)
    subnet.save(out)
    result = {"budget": {"max_macs": max_macs, "max_latency_ms": max_latency_ms}, "config": best,
              "arch": model.space.decode(best), "val_accuracy": accuracy, "macs": model.subnet_macs(best),
              "latency_ms": latency(best), "evaluated": len(accuracies), "generations": history,
              "model": str(out)}
    write_json(out.with_suffix(".json"), result)
    click.echo(f"best subnet: val accuracy {accuracy:.4f}, {result['macs']:,} MACs, "
               f"{result['latency_ms']:.3f} ms; written to {out}")


@click.command("pareto-plot")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("pareto.png"), show_default=True)
def pareto_plot_command(run_dirs, out):
    """Overlay the Pareto fronts of several runs (each evaluated with `evaluate --subnets`)."""
    from keras_edge_deps.pareto import plot_fronts

    reports = {}
    for run_dir in run_dirs:
        path = run_dir / "subnets.json"
        if not path.exists():
            raise KerasEdgeError(f"{path} not found; run `keras-edge evaluate {run_dir} --subnets` first")
        reports[run_dir.name] = json.loads(path.read_text())
    plot_fronts(reports, out)
    click.echo(f"wrote {out}")
