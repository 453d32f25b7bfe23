import pytest

from keras_edge.errors import RecipeError
from keras_edge.recipe import load_recipe, parse_recipe, to_toml
from tests.conftest import tiny


def test_defaults_make_one_stage():
    recipe = parse_recipe({})
    assert [s.name for s in recipe.stages] == ["train"]
    assert recipe.data.name == "fashion_mnist" and recipe.stages[0].train.epochs == 3


def test_stage_overrides_merge_over_top_level():
    recipe = parse_recipe(tiny(stages=[
        {"name": "pre", "epochs": 4},
        {"name": "fine", "data": {"batch_size": 8}, "train": {"learning_rate": 0.5}},
    ]))
    pre, fine = recipe.stages
    assert pre.train.epochs == 4 and pre.data.batch_size == 32
    assert fine.train.epochs == 2 and fine.train.learning_rate == 0.5 and fine.data.batch_size == 8
    assert fine.data.name == "synthetic"


@pytest.mark.parametrize("raw, fragment", [
    ({"train": {"epoch": 3}}, "unknown key 'train.epoch'; valid keys in train: "),
    ({"bogus": {}}, "unknown key 'bogus'"),
    ({"train": {"epochs": "3"}}, "train.epochs = '3' has the wrong type; expected int"),
    ({"train": {"optimizer": "rmsprop"}}, "choose one of ['adam', 'sgd']"),
    ({"data": {"classes": 3}}, "data.classes = 3 must be a list"),
    ({"stages": [{"name": "a", "plugins": ["nope"]}]}, "unknown plugin 'nope'"),
    ({"plugins": {"enable": ["nope"]}}, "plugins.enable: unknown plugin 'nope'"),
    ({"stages": [{"name": "a"}, {"name": "a"}]}, "stage names must be unique"),
    ({"stages": []}, "non-empty array"),
])
def test_bad_recipes_name_file_key_and_choices(raw, fragment):
    with pytest.raises(RecipeError) as err:
        parse_recipe(raw, source="my.toml")
    assert str(err.value).startswith("my.toml: ")
    assert fragment in str(err.value)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(RecipeError, match="batch_size, channels, classes"):
        parse_recipe({"data": {"batchsize": 3}})


def test_toml_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nepochs = = 3\n")
    with pytest.raises(RecipeError, match=r"bad.toml: TOML syntax error: .*line 2"):
        load_recipe(path)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(RecipeError, match="recipe file .*missing.toml not found"):
        load_recipe(tmp_path / "missing.toml")


def test_overrides_are_typed_and_reach_stages():
    recipe = parse_recipe(tiny(stages=[{"name": "a"}, {"name": "b"}]),
                          overrides=["train.learning_rate=0.3", "stages.1.epochs=7", "data.name=digits"])
    assert recipe.train.learning_rate == 0.3
    assert recipe.stages[1].train.epochs == 7 and recipe.stages[0].train.epochs == 2
    assert recipe.stages[0].data.name == "digits"


@pytest.mark.parametrize("override, fragment", [
    ("train.epochs", "expected KEY=VALUE"),
    ("stages.5.epochs=1", "stages has 1 entries"),
    ("train.nope=1", "unknown key 'train.nope'"),
    ("train.epochs=abc", "train.epochs = 'abc' has the wrong type"),
])
def test_bad_overrides(override, fragment):
    with pytest.raises(RecipeError, match=fragment.replace(".", r"\.").replace("'", "'")):
        parse_recipe(tiny(stages=[{"name": "a"}]), overrides=[override])


def test_resolved_recipe_round_trips():
    recipe = parse_recipe(tiny(stages=[{"name": "a", "epochs": 1}, {"name": "b", "data": {"classes": [0, 1]}}]))
    again = parse_recipe(to_toml(recipe.to_dict()))
    assert again.stages == recipe.stages
    assert (again.data, again.model, again.train) == (recipe.data, recipe.model, recipe.train)


def test_every_shipped_recipe_parses():
    from pathlib import Path

    recipes = sorted(Path(__file__).parents[1].glob("recipes/*.toml"))
    assert recipes
    for path in recipes:
        load_recipe(path)
