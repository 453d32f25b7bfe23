"""Property-based tests of recipe parsing and --set overrides."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from keras_edge.errors import RecipeError
from keras_edge.recipe import parse_recipe, to_toml

names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
train = st.fixed_dictionaries({}, optional={
    "epochs": st.integers(1, 1000),
    "learning_rate": st.floats(1e-6, 10, allow_nan=False),
    "optimizer": st.sampled_from(["adam", "sgd"]),
    "momentum": st.floats(0, 1),
    "nesterov": st.booleans(),
    "weight_decay": st.floats(0, 1),
    "schedule": st.sampled_from(["constant", "cosine"]),
    "warmup_epochs": st.floats(0, 5),
    "seed": st.integers(0, 2**31),
    "jit_compile": st.sampled_from([True, False, "auto"]),
})
data = st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["fashion_mnist", "digits", "synthetic", "tfds:mnist"]),
    "batch_size": st.integers(1, 4096),
    "validation_fraction": st.floats(0, 0.99),
    "classes": st.lists(st.integers(0, 9), max_size=5, unique=True).filter(lambda c: len(c) != 1),
    "limit": st.integers(0, 10**6),
})
stages = st.lists(st.fixed_dictionaries({"name": names}, optional={"epochs": st.integers(1, 50), "train": train,
                                                                   "data": data, "cache": st.booleans()}),
                  min_size=1, max_size=4, unique_by=lambda s: s["name"])
recipes = st.fixed_dictionaries({}, optional={"train": train, "data": data, "stages": stages})


@settings(max_examples=60, deadline=None)
@given(recipes)
def test_valid_recipes_round_trip_through_the_resolved_toml(raw):
    recipe = parse_recipe(raw, catalog={})
    again = parse_recipe(to_toml(recipe.to_dict()), catalog={})
    assert again.stages == recipe.stages and again.train == recipe.train and again.data == recipe.data


@settings(max_examples=60, deadline=None)
@given(recipes, st.integers(1, 1000), st.floats(1e-6, 10, allow_nan=False))
def test_overrides_win_over_the_file(raw, epochs, rate):
    recipe = parse_recipe(raw, catalog={}, overrides=[f"train.epochs={epochs}", f"train.learning_rate={rate!r}"])
    assert recipe.train.epochs == epochs and recipe.train.learning_rate == rate
    for stage, table in zip(recipe.stages, raw.get("stages", [{}])):
        if "epochs" not in table and "epochs" not in table.get("train", {}):
            assert stage.train.epochs == epochs


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(string.printable, max_size=30), max_size=4))
def test_any_override_text_is_accepted_or_a_recipe_error(overrides):
    try:
        parse_recipe({"stages": [{"name": "a"}]}, catalog={}, overrides=overrides)
    except RecipeError as exc:
        assert "\n" not in str(exc).strip() or "TOML" in str(exc)
