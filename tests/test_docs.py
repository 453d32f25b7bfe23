"""Every hook and every recipe key is documented."""

import dataclasses
import re
from pathlib import Path

from keras_edge import hookspecs
from keras_edge.recipe import DataConfig, ModelConfig, TrainConfig

ROOT = Path(__file__).parents[1]


def hook_names():
    return [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "keras_edge_spec")]


def test_there_are_hooks():
    assert {"on_grow", "select_trainable", "sample_subnets", "augment_batch"} <= set(hook_names())


def test_every_hook_is_documented():
    text = (ROOT / "docs" / "hooks.md").read_text()
    documented = set(re.findall(r"^### (\w+)$", text, re.M))
    assert set(hook_names()) == documented


def test_the_hook_reference_is_generated_from_the_specs():
    from keras_edge.hookdoc import END, START, render

    text = (ROOT / "docs" / "hooks.md").read_text()
    assert START + text.partition(START)[2].partition(END)[0] + END == render(), \
        "docs/hooks.md differs from keras_edge/hookspecs.py: run `python -m keras_edge.hookdoc docs/hooks.md`"


def test_every_hook_has_a_docstring():
    for name in hook_names():
        assert getattr(hookspecs, name).__doc__, name


def test_every_recipe_key_is_documented():
    text = (ROOT / "recipes" / "README.md").read_text()
    for section, cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
        for field in dataclasses.fields(cls):
            assert f"`{section}.{field.name}`" in text, f"{section}.{field.name} missing from recipes/README.md"
