"""Find a Sparse Update scheme for a budget: contribution analysis, then evolutionary search.

As in tiny-training (Lin et al. 2022): short fine-tuning runs measure, on the
validation set of the recipe's last stage, how much accuracy each part adds over
updating the classifier alone: the biases of the last ``k`` layers, and the weights
of one layer at each ratio of input channels. An evolutionary search then picks the
scheme whose summed gains are largest among those that fit the budget (exact cost
from the cost model). Exposed as ``keras-edge neq-search``.
"""

from __future__ import annotations

import copy
import dataclasses

import click
import numpy as np

from keras_edge import hookimpl
from keras_edge.errors import RecipeError
from keras_edge_neq.budget import BudgetOptions, CostModel
from keras_edge_neq.neurons import in_scope, neuron_layers
from keras_edge_neq.sparse_update import SchemeOptions, kept_channels, scheme_masks

SELECTION_PLUGINS = ("neq_velocity", "neq_random", "sparse_update", "classifier_only")


@dataclasses.dataclass
class Contributions:
    """Validation-accuracy gains over classifier-only fine-tuning."""

    layers: list
    """Names of the layers searched, the last one nearest the classifier."""
    baseline: float
    bias: list
    """``bias[k]``: gain of updating the biases of the last ``k`` layers (``bias[0] = 0``)."""
    weight: dict
    """``weight[layer][ratio]``: gain of updating that share of the layer's weights."""
    model: object = None
    stage: object = None


class _LastStageProbe:
    """Records the last stage's final validation accuracy, model and stage."""

    autouse = True

    def __init__(self, stage_index):
        self.stage_index, self.val_accuracy, self.model, self.stage = stage_index, None, None, None

    @hookimpl
    def on_epoch_end(self, ctx, logs):
        if ctx.stage_index == self.stage_index:
            self.val_accuracy, self.model, self.stage = logs["val_accuracy"], ctx.model, ctx.stage


def fine_tune_accuracy(recipe, scheme: dict, epochs: int) -> _LastStageProbe:
    """Run ``recipe`` with its last stage updating ``scheme`` (Sparse Update options) for ``epochs``."""
    from keras_edge.recipe import parse_recipe
    from keras_edge.runner import run_recipe

    raw = copy.deepcopy(recipe.raw)
    raw.setdefault("plugins", {})
    raw["plugins"]["enable"] = [p for p in raw["plugins"].get("enable", []) if p not in SELECTION_PLUGINS]
    raw["plugins"]["sparse_update"] = {**scheme, "budget": 1.0, "budget_unit": "fraction"}
    last = raw["stages"][-1]
    last["plugins"] = [p for p in last.get("plugins", []) if p not in SELECTION_PLUGINS] + ["sparse_update"]
    last.get("options", {}).pop("sparse_update", None)
    last["epochs"] = epochs
    variant = parse_recipe(raw, source=f"{recipe.source} (neq-search)")
    probe = _LastStageProbe(len(variant.stages) - 1)
    run_recipe(variant, extra_plugins={"neq_search_probe": probe})
    return probe


def contribution_analysis(recipe, epochs=1, ratios=(0.25, 0.5, 1.0), max_layers=8) -> Contributions:
    """Measure the gains of biases and of each layer's weights (at most 1 + k + k * len(ratios) runs)."""
    if len(recipe.stages) < 2:
        raise RecipeError(f"{recipe.source}: neq-search needs a pretraining stage and a fine-tuning stage "
                          "([[stages]] twice); see recipes/neq_sparse_update.toml")
    base = fine_tune_accuracy(recipe, {"bias_layers": 0}, epochs)
    body = [layer.name for layer in in_scope(neuron_layers(base.model), SchemeOptions.candidates)
            if not layer.is_classifier]
    searched = body[-max_layers:]
    bias = [0.0]
    for k in range(1, len(searched) + 1):
        bias.append(fine_tune_accuracy(recipe, {"bias_layers": k}, epochs).val_accuracy - base.val_accuracy)
    weight = {}
    channels = {layer.name: layer.in_channels for layer in neuron_layers(base.model)}
    for name in searched:
        weight[name], by_count = {}, {}
        for ratio in ratios:
            count = kept_channels(channels[name], ratio)  # ratios keeping as many channels: one run
            if count not in by_count:
                run = fine_tune_accuracy(recipe, {"bias_layers": 0, "weight_layers": [name],
                                                  "weight_ratios": [float(ratio)]}, epochs)
                by_count[count] = run.val_accuracy - base.val_accuracy
            weight[name][float(ratio)] = by_count[count]
    return Contributions(searched, base.val_accuracy, bias, weight, base.model, base.stage)


def evolve_scheme(contrib: Contributions, budget: BudgetOptions, population=32, generations=30, seed=0) -> dict:
    """The scheme with the largest summed gain that fits ``budget``, by evolutionary search.

    A genome is ``[k, choice for each layer]`` (choice 0: weights frozen, i: the i-th ratio).
    """
    model, layers = contrib.model, in_scope(neuron_layers(contrib.model), budget.candidates)
    cost_model = CostModel.for_stage(budget, contrib.stage)
    limit = cost_model.limit(budget, model, layers)
    names = contrib.layers
    ratios = [sorted(contrib.weight[n]) for n in names]
    highs = np.array([len(names) + 1] + [len(r) + 1 for r in ratios])
    rng = np.random.default_rng(seed)

    def scheme(genome) -> dict:
        chosen = [(n, r[g - 1]) for n, r, g in zip(names, ratios, genome[1:]) if g > 0]
        return {"bias_layers": int(genome[0]), "weight_layers": [n for n, _ in chosen],
                "weight_ratios": [r for _, r in chosen]}

    seen = {}

    def fitness(genome) -> float:
        key = tuple(int(g) for g in genome)
        if key not in seen:
            masks = scheme_masks(layers, SchemeOptions(**scheme(genome)))
            fits = cost_model.selection_cost(model, layers, masks) <= limit
            seen[key] = contrib.bias[key[0]] + sum(contrib.weight[n][r[g - 1]] for n, r, g
                                                   in zip(names, ratios, key[1:]) if g > 0) if fits else -np.inf
        return seen[key]

    if fitness(np.zeros(len(highs), int)) == -np.inf:
        raise RecipeError(f"neq-search: {limit:.0f} {cost_model.unit} is less than the classifier alone needs; "
                          "raise the budget")
    pool = [np.zeros(len(highs), int)] + [rng.integers(0, highs) for _ in range(population - 1)]
    for _ in range(generations):
        pool.sort(key=fitness, reverse=True)
        parents = pool[: population // 2]
        children = []
        while len(parents) + len(children) < population:
            a, b = rng.choice(len(parents), 2)
            child = np.where(rng.random(len(highs)) < 0.5, parents[a], parents[b])
            mutate = rng.random(len(highs)) < 0.2
            children.append(np.where(mutate, rng.integers(0, highs), child))
        pool = parents + children
    best = max(pool, key=fitness)
    return {**scheme(best), "predicted_gain": float(fitness(best))}


@click.command("neq-search")
@click.argument("recipe_path", type=click.Path(dir_okay=False))
@click.option("--budget", "budgets", type=float, multiple=True, required=True,
              help="Budget(s) to find a scheme for, in --budget-unit (repeat for several).")
@click.option("--budget-unit", type=click.Choice(["fraction", "params", "bytes"]), default="fraction")
@click.option("--epochs", type=int, default=1, show_default=True, help="Epochs of each contribution run.")
@click.option("--ratios", default="0.25,0.5,1", show_default=True, help="Weight ratios to try per layer.")
@click.option("--max-layers", type=int, default=8, show_default=True, help="Search the last N layers.")
@click.option("--set", "overrides", multiple=True, help="Recipe override KEY=VALUE (repeatable).")
def search_command(recipe_path, budgets, budget_unit, epochs, ratios, max_layers, overrides):
    """Find Sparse Update schemes for budgets on the recipe's last stage (validation set)."""
    from keras_edge.recipe import load_recipe, to_toml

    recipe = load_recipe(recipe_path, overrides)
    try:
        ratio_values = tuple(float(r) for r in ratios.split(","))
    except ValueError:
        raise RecipeError(f"--ratios {ratios!r}: give numbers in (0, 1] separated by commas, e.g. 0.25,0.5,1")
    contrib = contribution_analysis(recipe, epochs, ratio_values, max_layers)
    click.echo(f"# classifier-only validation accuracy {contrib.baseline:.4f}; gains: bias {contrib.bias}, "
               f"weights {contrib.weight}")
    for value in budgets:
        budget = SchemeOptions(budget=value, budget_unit=budget_unit)
        found = evolve_scheme(contrib, budget)
        gain = found.pop("predicted_gain")
        click.echo(f"\n# budget {value} {budget_unit}: predicted validation gain {gain:+.4f}")
        click.echo(to_toml({"plugins": {"sparse_update": {"budget": value, "budget_unit": budget_unit, **found}}}))
