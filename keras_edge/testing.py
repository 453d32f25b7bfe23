"""Help for testing plugins: run a small recipe with given plugin objects, no install needed.

    from keras_edge.testing import TINY_RECIPE, run_with_plugins

    summary = run_with_plugins({"mine": MyPlugin()}, train={"epochs": 2})

The plugins are registered for this run only and enabled in every stage; their
``Options`` (if any) are validated from the recipe's ``[plugins.<name>]`` tables.
"""

from __future__ import annotations

import copy

from keras_edge.plugins import plugin_catalog
from keras_edge.recipe import parse_recipe
from keras_edge.runner import run_recipe

TINY_RECIPE = {
    "data": {"name": "synthetic", "synthetic_examples": 256, "synthetic_shape": [12, 12, 1],
             "synthetic_classes": 4, "batch_size": 32, "validation_fraction": 0.25},
    "model": {"name": "small_cnn", "width": 0.25},
    "train": {"epochs": 2, "optimizer": "sgd", "learning_rate": 0.05, "jit_compile": False},
}
"""A recipe that trains in seconds: 192 synthetic 12x12 images of 4 classes, a quarter-width small CNN."""


def tiny_recipe(**sections) -> dict:
    """``TINY_RECIPE`` with sections updated, e.g. ``tiny_recipe(train={"epochs": 1})``."""
    recipe = copy.deepcopy(TINY_RECIPE)
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(recipe.get(name), dict):
            recipe[name].update(values)
        else:
            recipe[name] = values
    return recipe


def run_with_plugins(plugins: dict, recipe: dict | None = None, out=None, resume=False, **sections) -> dict:
    """Run ``recipe`` (default: ``tiny_recipe(**sections)``) with ``plugins`` ({name: object})
    enabled; with ``out``, into that run folder. Returns the run's summary."""
    recipe = copy.deepcopy(recipe) if recipe is not None else tiny_recipe(**sections)
    table = recipe.setdefault("plugins", {})
    table["enable"] = list(dict.fromkeys([*table.get("enable", []), *plugins]))
    catalog = {**plugin_catalog(), **{name: getattr(obj, "Options", None) for name, obj in plugins.items()}}
    return run_recipe(parse_recipe(recipe, catalog=catalog), out, resume=resume, extra_plugins=plugins)
