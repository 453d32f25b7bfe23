"""The NEq recipes are valid and every option of the NEq plugins is documented."""

import dataclasses
from pathlib import Path

import pytest

from keras_edge.recipe import load_recipe
from keras_edge_neq.neq_velocity import NeqVelocity
from keras_edge_neq.random_selection import NeqRandom
from keras_edge_neq.sparse_update import SparseUpdate

ROOT = Path(__file__).parents[3]
CATALOG = {"neq_velocity": NeqVelocity.Options, "neq_random": NeqRandom.Options,
           "sparse_update": SparseUpdate.Options, "classifier_only": None}


@pytest.mark.parametrize("plugin", [NeqVelocity, NeqRandom, SparseUpdate])
def test_every_option_is_in_the_method_card(plugin):
    text = (ROOT / "plugins" / "keras_edge_neq" / "README.md").read_text()
    for field in dataclasses.fields(plugin.Options):
        assert f"`{field.name}`" in text, f"{plugin.name}.{field.name} missing from plugins/keras_edge_neq/README.md"


@pytest.mark.parametrize("name,plugin", [("neq_budget", "neq_velocity"), ("neq_random", "neq_random"),
                                         ("neq_sparse_update", "sparse_update"), ("finetune_full", None)])
def test_budget_recipes_share_the_pretraining_and_select_in_the_fine_tuning(name, plugin):
    recipe = load_recipe(ROOT / "recipes" / f"{name}.toml", catalog=CATALOG)
    pretrain, finetune = recipe.stages
    assert pretrain.cache and pretrain.plugins == () and finetune.data.name == "digits"
    assert finetune.plugins == ((plugin,) if plugin else ())
    reference = load_recipe(ROOT / "recipes" / "finetune_full.toml", catalog=CATALOG)
    assert recipe.to_dict()["stages"][0] == reference.to_dict()["stages"][0]
