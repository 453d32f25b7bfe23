"""The run's own features are plugins: listed, disable-able by name, replaceable; a hook
gets its own plugin's options; loss_terms sees the subnet of the current step."""

import dataclasses
import json

import numpy as np
import tensorflow as tf

from keras_edge import hookimpl
from keras_edge.builtins import BUILTIN_PLUGINS
from keras_edge.context import SubnetSample
from keras_edge.recipe import parse_recipe
from keras_edge.runner import run_recipe
from tests.conftest import tiny
from tests.test_cli import run_cli


def test_every_built_in_is_listed(capsys):
    code, out, _ = run_cli(["plugins", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and set(BUILTIN_PLUGINS) <= set(rows)
    assert all(rows[n]["builtin"] and rows[n]["autouse"] and rows[n]["hooks"] for n in BUILTIN_PLUGINS)


def test_disabled_checkpoints_write_no_checkpoint(tmp_path):
    out = tmp_path / "run"
    run_recipe(parse_recipe(tiny(train={"epochs": 2}, plugins={"disable": ["checkpoints", "tensorboard"]})), out)
    assert (out / "model.keras").exists() and (out / "metrics.csv").exists()
    assert not (out / "checkpoints").exists() and not (out / "tensorboard").exists()


class CsvOfMyOwn:
    """A third-party replacement for the built-in metrics_csv."""

    @hookimpl
    def on_epoch_end(self, ctx, logs):
        (ctx.run_dir / "metrics.csv").write_text(f"mine,{ctx.epoch}\n")


def test_a_built_in_can_be_replaced(tmp_path):
    out = tmp_path / "run"
    recipe = parse_recipe(tiny(train={"epochs": 1}, plugins={"disable": ["metrics_csv"], "enable": ["mine"]}),
                          catalog={"mine": None, "metrics_csv": None})
    run_recipe(recipe, out, extra_plugins={"mine": CsvOfMyOwn()})
    assert (out / "metrics.csv").read_text() == "mine,0\n"


class WithOptions:
    @dataclasses.dataclass(frozen=True)
    class Options:
        tag: str = "default"

    def __init__(self):
        self.seen = []

    @hookimpl
    def on_epoch_start(self, options):
        self.seen.append(options)


def test_a_hook_receives_its_own_plugins_options():
    plugin = WithOptions()
    recipe = parse_recipe(tiny(train={"epochs": 1}, plugins={"enable": ["opts"], "opts": {"tag": "mine"}}),
                          catalog={"opts": WithOptions.Options})
    run_recipe(recipe, extra_plugins={"opts": plugin})
    assert plugin.seen == [WithOptions.Options(tag="mine")]


class VaryingSubnets:
    """Each step a different distill_weight (its step number); loss_terms logs what it sees."""

    def __init__(self):
        self.chosen = []

    @hookimpl
    def sample_subnets(self, ctx):
        self.chosen.append(float(ctx.step))
        return [SubnetSample(distill_weight=float(ctx.step))]

    @hookimpl
    def loss_terms(self, outputs, subnet):
        return {"seen": 0.0 * tf.reduce_sum(outputs["logits"]) + tf.cast(subnet.distill_weight, tf.float32)}


def test_loss_terms_sees_the_current_steps_subnet_not_a_stale_one(tmp_path):
    plugin = VaryingSubnets()
    recipe = parse_recipe(tiny(train={"epochs": 1}, plugins={"enable": ["vary"]}), catalog={"vary": None})
    run_recipe(recipe, tmp_path / "run", extra_plugins={"vary": plugin})
    header, row = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[:2]
    seen = float(row.split(",")[header.split(",").index("seen")])
    assert len(plugin.chosen) > 1 and np.isclose(seen, np.mean(plugin.chosen))


def test_plugins_json_gives_each_options_type_default_and_help(capsys):
    code, out, _ = run_cli(["plugins", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    (keep,) = rows["checkpoints"]["options"]
    assert keep == {"name": "keep", "type": "int", "default": 2,
                    "help": "How many of the newest checkpoints to keep (older ones are deleted)."}
    assert all(o["help"] for r in rows.values() for o in r["options"]), "an option without a docstring"
