"""The ``keras-edge`` command line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import click

from keras_edge.errors import KerasEdgeError, RunInterrupted, user_error
from keras_edge.guards import request_stop

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-edge")
@click.option("--traceback", is_flag=True, help="Show the full Python traceback of an error "
              "(also: KERAS_EDGE_TRACEBACK=1).")
def cli(traceback):
    """keras-edge: train Keras models for edge devices with plugin recipes.

    \b
    keras-edge run recipes/quickstart.toml --out runs/quick
    keras-edge evaluate runs/quick
    keras-edge plugins
    """


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder (default: runs/<recipe name>).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set train.epochs=1 --set stages.0.data.limit=1000.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--force", is_flag=True,
              help="Replace the keras-edge run in --out (deleted once the new run's first epoch ends).")
def run(recipe, out, overrides, resume, force):
    """Train the recipe RECIPE (a TOML file; see recipes/README.md)."""
    from keras_edge.recipe import load_recipe
    from keras_edge.runner import run_recipe

    parsed = load_recipe(recipe, overrides)
    out = out or Path("runs") / recipe.stem
    summary = run_recipe(parsed, out, resume=resume, force=force)
    click.echo(f"test accuracy {summary['test_accuracy']:.4f}, {summary['params']:,} parameters, "
               f"{summary['macs']:,} MACs, {summary['wall_time_s']:.1f} s; results in {out}")
    for note in summary.get("notes", ()):  # plugins' lines for the user (e.g. a supernet's subnets)
        click.echo(note)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def status(run_dir):
    """Show whether the run in RUN_DIR is running, finished, failed, interrupted or dead."""
    from keras_edge.run_folder import read_status

    click.echo(json.dumps(read_status(run_dir), indent=2))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print name, hooks, version and options as JSON.")
def plugins(as_json):
    """List installed plugins and the hooks they implement."""
    from keras_edge.plugins import describe, get_plugin_manager

    rows = describe(get_plugin_manager())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        if "broken" in row:
            click.echo(f"{row['name']}: BROKEN, {row['broken']}")
            continue
        version = f" {row['version']}" if row["version"] else ""
        auto = " (autouse)" if row["autouse"] else ""
        click.echo(f"{row['name']}{version}{auto}: {', '.join(row['hooks']) or 'no hooks'}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--corruptions", is_flag=True, help="Also measure accuracy under the 15 common corruptions.")
@click.option("--subnets", is_flag=True, help="Also evaluate subnets of a once-for-all supernet (Pareto front).")
def evaluate(run_dir, split, corruptions, subnets):
    """Evaluate the model of a finished run; writes RUN_DIR/evaluation.json."""
    from keras_edge.evaluation import evaluate_run

    report = evaluate_run(run_dir, split, {"corruptions": corruptions, "subnets": subnets})
    click.echo(json.dumps({k: v for k, v in report.items() if not isinstance(v, (dict, list))}, indent=2))
    for section in report.values():  # plugin sections may carry a summary for the terminal
        if isinstance(section, dict) and isinstance(section.get("summary"), list):
            click.echo("\n".join(section["summary"]))


def _add_export_command() -> None:
    from keras_edge.export.command import export

    cli.add_command(export)


def _add_plugin_commands() -> None:
    from keras_edge.plugins import get_plugin_manager

    get_plugin_manager().hook.register_commands(cli=cli)


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _start_tensorflow() -> None:
    """Import TensorFlow, split the CPU if ``$KERAS_EDGE_CPU_DEVICES`` asks, start devices.

    TensorFlow's C++ start-up messages ignore ``TF_CPP_MIN_LOG_LEVEL``; they are hidden
    unless the user sets that variable below 3 to see them.
    """
    quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "3"
    with _stderr_to_devnull() if quiet else contextlib.nullcontext():
        import absl.logging
        import tensorflow as tf

        if quiet:
            absl.logging.set_verbosity(absl.logging.ERROR)  # the TFLite converter's chatter

        from keras_edge.distribute import configure_cpu_devices

        configure_cpu_devices()
        if "TF_CONFIG" not in os.environ:  # multi-worker set-up must come before device start
            tf.config.list_logical_devices()


def main(argv=None) -> None:
    """Console entry point: known errors become one line on stderr and exit code 2
    (with ``--traceback`` or ``KERAS_EDGE_TRACEBACK=1``: the full traceback)."""
    args = sys.argv[1:] if argv is None else list(argv)
    full = "--traceback" in args or os.environ.get("KERAS_EDGE_TRACEBACK", "") not in ("", "0")
    previous = signal.signal(signal.SIGTERM, request_stop)  # a run stops at its next step, resumable
    try:
        _start_tensorflow()
        _add_export_command()
        _add_plugin_commands()
        cli.main(args=args, standalone_mode=False)
    except RunInterrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(130)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, EOFError):  # click turns EOFError into Abort, too
            click.echo(f"error: a file ended early (truncated?): {exc.__context__}", err=True)
            sys.exit(2)
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except Exception as exc:
        known = user_error(exc)  # a KerasEdgeError, perhaps wrapped by TensorFlow while tracing a hook
        if known is None or full:
            raise
        click.echo("error: " + " ".join(str(known).split()), err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
