"""One-Shot Growth: function preservation, parameter targets, m-shot plans, BN calibration."""

import keras
import numpy as np
import pytest

from keras_edge.errors import KerasEdgeError
from keras_edge.models import count_params, resnet, small_cnn, vgg
from keras_edge_gearnn import growth


def _with_random_bn(model, seed=0):
    """Non-trivial BatchNorm statistics, so preserving the function is not a coincidence."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for v in layer.weights:
                v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(1)
    return rng.random((32, 16, 16, 1)).astype("float32"), rng.integers(0, 5, 32)


@pytest.mark.parametrize("build", [lambda: vgg((16, 16, 1), 5, width=0.25),
                                   lambda: small_cnn((16, 16, 1), 5, width=0.25)], ids=["vgg", "small_cnn"])
@pytest.mark.parametrize("strategy", ["firefly", "split"])
def test_function_preserving_growth_keeps_outputs(build, strategy, batch):
    x, y = batch
    model = _with_random_bn(build())
    widths = [2 * w + 1 for w in growth.widths_of(model)]
    grown = growth.grow(model, widths, strategy, x, y, candidates=2)
    assert growth.widths_of(grown) == widths
    diff = np.abs(grown(x, training=False).numpy() - model(x, training=False).numpy()).max()
    assert diff <= 1e-5


def test_random_growth_changes_outputs(batch):
    x, y = batch
    model = _with_random_bn(vgg((16, 16, 1), 5, width=0.25))
    grown = growth.grow(model, [2 * w for w in growth.widths_of(model)], "random", x, y)
    assert np.abs(grown(x, training=False).numpy() - model(x, training=False).numpy()).max() > 1e-3


@pytest.mark.parametrize("build", [lambda: vgg((16, 16, 1), 5, width=0.25),
                                   lambda: small_cnn((16, 16, 1), 5, width=0.25)], ids=["vgg", "small_cnn"])
def test_param_count_lands_on_target(build, batch):
    model = build()
    assert growth.param_count(model, growth.widths_of(model)) == count_params(model)
    target = int(count_params(model) * 3.3)
    widths = growth.fit_widths(model, target)
    grown = growth.grow(model, widths, "firefly", *batch, candidates=2)
    params = count_params(grown)
    assert params == growth.param_count(model, widths) <= target
    one_more = min(growth.param_count(model, widths[:i] + [widths[i] + 1] + widths[i + 1:])
                   for i in range(len(widths)))
    assert one_more > target  # no single extra channel would still fit


def test_target_below_current_size_is_an_error():
    model = vgg((16, 16, 1), 5, width=0.25)
    with pytest.raises(KerasEdgeError, match="target"):
        growth.fit_widths(model, count_params(model) - 1)


def test_m_shot_plan_grows_monotonically_to_the_final_widths():
    plan = growth.shot_widths([8, 16], [20, 40], 3)
    assert plan[-1] == [20, 40] and len(plan) == 3
    assert all(a <= b for step, nxt in zip(plan, plan[1:]) for a, b in zip(step, nxt))
    assert plan[0][0] > 8


def test_new_channels_get_batch_statistics(batch):
    x, y = batch
    model = vgg((16, 16, 1), 5, width=0.25)
    grown = growth.grow(model, [w + 4 for w in growth.widths_of(model)], "firefly", x, y, candidates=2)
    conv = keras.Model(grown.inputs[0], grown.get_layer("conv1").output)(x, training=False).numpy()
    old = growth.widths_of(model)[0]
    np.testing.assert_allclose(grown.get_layer("bn1").moving_mean.numpy()[old:], conv.mean((0, 1, 2))[old:],
                               rtol=1e-4, atol=1e-6)


def test_firefly_keeps_the_best_scored_candidates(batch):
    x, y = batch
    model = vgg((16, 16, 1), 5, width=0.25)
    old = growth.widths_of(model)
    pool = [o + 3 * 2 for o in old]
    fresh = {layer.name: growth._fresh_map(o, p) for layer, o, p in zip(growth.growable_layers(model), old, pool)}
    wide = growth._carry(model, growth._build(model, pool, 0), fresh, zero_outgoing=True)
    growth._calibrate(wide, x, fresh)
    scores = growth._outgoing_scores(wide, x, y)
    assert all(s[o:].max() > 0 for s, o in zip(scores.values(), old))
    grown = growth.grow(model, [o + 2 for o in old], "firefly", x, y, candidates=3)
    best = np.argsort(-scores["conv1"][old[0]:])[:2] + old[0]
    kept = grown.get_layer("conv1").kernel.numpy()[..., old[0]:]
    np.testing.assert_allclose(kept, wide.get_layer("conv1").kernel.numpy()[..., np.sort(best)])


def test_residual_models_are_rejected_clearly():
    with pytest.raises(KerasEdgeError, match="chain-shaped"):
        growth.widths_of(resnet((16, 16, 1), 5, width=0.25))


def test_grown_model_keeps_layer_settings(batch):
    model = vgg((16, 16, 1), 5, width=0.25, bn_momentum=0.9)
    grown = growth.grow(model, [w + 1 for w in growth.widths_of(model)], "split", *batch)
    assert grown.get_layer("bn3").momentum == 0.9 and grown.get_layer("conv3").padding == "same"
