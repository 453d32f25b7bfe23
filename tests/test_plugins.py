"""Plugin discovery, activation and failure reporting."""

import importlib.metadata

import pytest

from keras_edge import hookimpl
from keras_edge.errors import PluginError
from keras_edge.plugins import describe, get_plugin_manager, plugin_catalog
from keras_edge.recipe import parse_recipe
from keras_edge.runner import run_recipe
from tests.conftest import tiny


def example_installed():
    names = {ep.name for ep in importlib.metadata.entry_points(group="keras_edge")}
    assert "weight_norm" in names, (
        "the example third-party plugin is not installed: pip install -e ./examples/weight-norm-plugin")


def test_third_party_plugin_is_listed_and_fires_in_a_run(tmp_path):
    example_installed()
    rows = {row["name"]: row for row in describe(get_plugin_manager())}
    assert rows["weight_norm"]["hooks"] == ["on_epoch_end"]
    assert rows["weight_norm"]["package"] == "keras-edge-weight-norm" and rows["weight_norm"]["autouse"]
    run_recipe(parse_recipe(tiny(train={"epochs": 1})), tmp_path / "run")
    header, row = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[:2]
    norm = float(row.split(",")[header.split(",").index("weight_norm")])
    assert norm > 0


def test_disabled_plugin_does_not_fire(tmp_path):
    example_installed()
    run_recipe(parse_recipe(tiny(train={"epochs": 1}, plugins={"disable": ["weight_norm"]})), tmp_path / "run")
    assert "weight_norm" not in (tmp_path / "run" / "metrics.csv").read_text()


def test_env_var_limits_loaded_plugins_but_not_the_built_ins(monkeypatch):
    from keras_edge.builtins import BUILTIN_PLUGINS

    monkeypatch.setenv("KERAS_EDGE_PLUGINS", "")
    assert set(plugin_catalog()) == set(BUILTIN_PLUGINS)
    monkeypatch.setenv("KERAS_EDGE_PLUGINS", "weight_norm")
    assert set(plugin_catalog()) - set(BUILTIN_PLUGINS) <= {"weight_norm"}


class Misspelt:
    @hookimpl
    def on_epoch_ends(self, ctx):
        pass


def test_misspelt_hook_is_an_error_at_start_up():
    with pytest.raises(PluginError, match="plugin 'typo' failed in hook 'on_epoch_ends': no such hook"):
        get_plugin_manager({"typo": Misspelt()})


class OnlyInStageTwo:
    def __init__(self):
        self.stages = []

    @hookimpl
    def on_stage_start(self, ctx):
        self.stages.append(ctx.stage.name)


def test_stage_plugins_are_active_only_in_their_stage():
    plugin = OnlyInStageTwo()
    recipe = parse_recipe(tiny(stages=[{"name": "a", "epochs": 1}, {"name": "b", "epochs": 1, "plugins": ["two"]}]),
                          catalog={"two": None})
    run_recipe(recipe, extra_plugins={"two": plugin})
    assert plugin.stages == ["b"]


class WithOptions:
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Options:
        strength: float = 1.0
        """How strong."""

        def __post_init__(self):
            if self.strength <= 0:
                raise ValueError("plugins.opt.strength must be > 0; use e.g. 0.5")


def test_plugin_options_are_validated_and_overridable_per_stage():
    catalog = {"opt": WithOptions.Options}
    recipe = parse_recipe({"plugins": {"opt": {"strength": 2}},
                           "stages": [{"name": "a"}, {"name": "b", "options": {"opt": {"strength": 0.5}}}]},
                          catalog=catalog)
    assert recipe.stages[0].options["opt"].strength == 2.0
    assert recipe.stages[1].options["opt"].strength == 0.5
    from keras_edge.errors import RecipeError

    with pytest.raises(RecipeError, match="unknown key 'plugins.opt.strenght'"):
        parse_recipe({"plugins": {"opt": {"strenght": 2}}}, catalog=catalog)
    with pytest.raises(RecipeError, match="strength must be > 0"):
        parse_recipe({"plugins": {"opt": {"strength": -1}}}, catalog=catalog)
    with pytest.raises(RecipeError, match="plugin 'bare' takes no options"):
        parse_recipe({"plugins": {"bare": {"x": 1}}}, catalog={"bare": None})


class Reader:
    """Reads the ``opt`` plugin's settings: declared or not."""

    def __init__(self, declared: bool):
        self.uses_options = ("opt",) if declared else ()
        self.seen = []

    @hookimpl
    def on_epoch_end(self, ctx, options):
        self.seen.append((options, ctx.options_of(self, "opt").strength))


def test_a_plugin_reads_another_plugins_options_only_when_it_declares_them():
    from keras_edge.testing import run_with_plugins

    reader = Reader(declared=True)
    recipe = tiny(train={"epochs": 1}, plugins={"opt": {"strength": 3}})
    run_with_plugins({"opt": WithOptions(), "reader": reader}, recipe)
    assert reader.seen == [(None, 3.0)]
    rows = {row["name"]: row for row in describe(get_plugin_manager())}
    assert rows["neq_velocity"]["uses_options"] == ["sparse_update"] and rows["osg"]["uses_options"] == []
    with pytest.raises(PluginError, match=r"reads \[plugins.opt\] without declaring it; add uses_options"):
        run_with_plugins({"opt": WithOptions(), "reader": Reader(declared=False)}, train={"epochs": 1})


class WrongType:
    @hookimpl
    def select_trainable(self):
        return ["not", "a", "dict"]


def test_wrong_return_type_names_plugin_and_hook():
    recipe = parse_recipe(tiny(plugins={"enable": ["wrong"]}), catalog={"wrong": None})
    with pytest.raises(PluginError, match="plugin 'wrong' failed in hook 'select_trainable': returned list"):
        run_recipe(recipe, extra_plugins={"wrong": WrongType()})
