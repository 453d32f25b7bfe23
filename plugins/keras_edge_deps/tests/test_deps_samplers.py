"""DεpS, BigNAS and OFA samplers: warmup, ε schedule, sandwich rule, progressive-shrinking phases."""

import types

import numpy as np
import pytest

from keras_edge.errors import RecipeError
from keras_edge.recipe import parse_recipe
from keras_edge_deps import bignas, deps, ofa
from keras_edge_deps.space import SearchSpace

SPACE = SearchSpace(2, depths=(1, 2), kernels=(3, 5), expands=(2, 3))


def context(step, epochs=10, steps_per_epoch=10):
    """A stand-in for the run context at stage step ``step``."""
    return types.SimpleNamespace(
        model=types.SimpleNamespace(space=SPACE, name="supernet", subnet_macs=lambda c: 1000),
        recipe=types.SimpleNamespace(train=types.SimpleNamespace(seed=0)),
        stage=types.SimpleNamespace(data=types.SimpleNamespace(batch_size=8)),
        step=step, epoch=step // steps_per_epoch, epochs=epochs, steps_per_epoch=steps_per_epoch)


def test_epsilon_rises_linearly_per_step_to_one_then_stays():
    options = deps.Options(epsilon_start=1e-4, epsilon_epochs=2, epsilon_min_steps=0)
    values = [deps.epsilon(options, step, steps_per_epoch=10) for step in range(30)]
    assert values[0] == pytest.approx(1e-4)
    assert np.allclose(np.diff(values[:21]), (1 - 1e-4) / 20)
    assert values[20:] == [1.0] * 10


def test_deps_trains_only_the_full_model_during_warmup():
    plugin, options = deps.DepsPlugin(), deps.Options(warmup_fraction=0.5, num_subnets=4, epsilon_epochs=2, epsilon_min_steps=0)
    for step in range(50):  # epochs 0-4 of 10
        samples = plugin.sample_subnets(context(step), options)
        assert len(samples) == 1 and samples[0].config is None and samples[0].grad_scale == 1.0


def test_deps_then_trains_full_smallest_and_random_subnets_scaled_by_epsilon():
    plugin, options = deps.DepsPlugin(), deps.Options(warmup_fraction=0.5, num_subnets=4, epsilon_epochs=2, epsilon_min_steps=0)
    scales = []
    for step in range(50, 100):
        full, smallest, *random = plugin.sample_subnets(context(step), options)
        assert full.config is None and full.grad_scale == 1.0 and full.ce_weight == 1.0
        assert np.array_equal(smallest.config, SPACE.smallest()) and len(random) == 2
        assert all(s.distill_weight == 1.0 and s.ce_weight == 0.0 for s in [smallest, *random])
        assert smallest.grad_scale == random[0].grad_scale == random[1].grad_scale
        scales.append(smallest.grad_scale)
    expected = [deps.epsilon(options, s, 10) for s in range(50)]
    assert scales == pytest.approx(expected) and scales[0] < 1e-3 and scales[-1] == 1.0


def test_bignas_sandwich_from_the_first_step():
    plugin = bignas.BignasPlugin()
    configs = []
    for step in range(5):
        largest, smallest, *random = plugin.sample_subnets(context(step), bignas.Options(num_subnets=4))
        assert largest.config is None and np.array_equal(smallest.config, SPACE.smallest())
        assert len(random) == 2 and all(s.grad_scale == 1.0 and s.distill_weight == 1.0 for s in random)
        configs += [tuple(s.config) for s in random]
    assert len(set(configs)) > 2  # random subnets differ from step to step


@pytest.mark.parametrize("phase, elastic", [("full", set()), ("kernel", {"kernel"}),
                                            ("depth", {"kernel", "depth"}), ("expand", {"kernel", "depth", "expand"})])
def test_ofa_phase_makes_only_its_dimensions_elastic(phase, elastic):
    plugin = ofa.OfaPlugin()
    options = ofa.Options(phase=phase, num_subnets=3)
    seen = {"kernel": set(), "depth": set(), "expand": set()}
    for step in range(40):
        for sample in plugin.sample_subnets(context(step), options):
            if sample.config is None:
                seen["depth"].add(2), seen["kernel"].add(5), seen["expand"].add(3)
                continue
            arch = SPACE.decode(sample.config)
            seen["depth"] |= set(arch["depth"])
            seen["kernel"] |= {k for ks in arch["kernel"] for k in ks}
            seen["expand"] |= {e for es in arch["expand"] for e in es}
    assert {name for name, values in seen.items() if len(values) > 1} == elastic


def test_ofa_restricts_depths_in_a_sub_phase():
    plugin = ofa.OfaPlugin()
    samples = [s for step in range(20)
               for s in plugin.sample_subnets(context(step), ofa.Options(phase="depth", num_subnets=2, depths=(2,)))]
    assert all(SPACE.decode(s.config)["depth"] == [2, 2] for s in samples)


def test_sampler_rng_state_round_trips():
    a, b = deps.DepsPlugin(), deps.DepsPlugin()
    ctx, options = context(60), deps.Options()
    a.sample_subnets(ctx, options)
    b.load_state_dict(ctx, a.state_dict(ctx))
    assert ([tuple(s.config) for s in a.sample_subnets(ctx, options)[1:]]
            == [tuple(s.config) for s in b.sample_subnets(ctx, options)[1:]])


@pytest.mark.parametrize("table, message", [
    ({"deps": {"warmup_fraction": 1.5}}, "plugins.deps.warmup_fraction"),
    ({"deps": {"num_subnets": 1}}, "plugins.deps.num_subnets"),
    ({"ofa": {"phase": "width"}}, "phase"),
    ({"supernet": {"buckets": 0}}, "plugins.supernet.buckets"),
])
def test_bad_options_are_recipe_errors(table, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe({"plugins": table})


def test_sampler_needs_a_supernet():
    ctx = context(60)
    ctx.model = types.SimpleNamespace(name="small_cnn")
    with pytest.raises(RecipeError, match="elastic_mobilenet"):
        deps.DepsPlugin().sample_subnets(ctx, deps.Options())


def test_recipes_keep_the_papers_epoch_ratios():
    from pathlib import Path

    from keras_edge.recipe import load_recipe

    root = Path(__file__).parents[3] / "recipes"
    epochs = {name: sum(s.epochs for s in load_recipe(root / f"{name}.toml").stages) for name in ("deps", "bignas", "ofa")}
    assert epochs["bignas"] / epochs["deps"] == pytest.approx(400 / 270, rel=0.02)
    assert epochs["ofa"] / epochs["deps"] == pytest.approx(605 / 270, rel=0.02)
    phases = [s.options["ofa"].phase for s in load_recipe(root / "ofa.toml").stages]
    assert phases == ["full", "kernel", "depth", "depth", "expand", "expand"]
