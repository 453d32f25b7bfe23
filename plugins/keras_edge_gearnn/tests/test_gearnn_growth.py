"""Growth: function preservation, targets, cross-layer ranking, residual models, BN calibration."""

import keras
import numpy as np
import pytest

from keras_edge.errors import KerasEdgeError
from keras_edge.models import count_params, mobilenet_v2, resnet, small_cnn, vgg
from keras_edge_gearnn import growth

MODELS = {
    "vgg": lambda: vgg((16, 16, 1), 5, width=0.25),
    "small_cnn": lambda: small_cnn((16, 16, 1), 5, width=0.25),
    "resnet": lambda: resnet((16, 16, 1), 5, width=0.5),
    "mobilenet_v2": lambda: mobilenet_v2((16, 16, 1), 5, width=0.25, stages=((1, 16, 1, 1), (6, 24, 2, 2))),
}


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


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("strategy", ["firefly", "split", "uniform"])
def test_growth_keeps_outputs_and_lands_on_the_target(name, strategy, batch):
    x, y = batch
    model = _with_random_bn(MODELS[name]())
    target = int(count_params(model) * 1.8)
    grown, report = growth.grow_to(model, target, strategy, x, y, candidates=2)
    assert growth.widths_of(grown) == report["widths"]
    assert all(n >= o for n, o in zip(report["widths"], growth.widths_of(model)))
    diff = np.abs(grown(x, training=False).numpy() - model(x, training=False).numpy()).max()
    assert diff <= 1e-5
    params = count_params(grown)
    assert params == growth.param_count(model, report["widths"]) <= target
    if strategy != "split":  # split can at most double each layer
        cheapest = min(growth.param_count(grown, [w + (i == j) for j, w in enumerate(report["widths"])])
                       for i in range(len(report["widths"]))) - params
        assert target - params < cheapest  # no single extra neuron would still fit


def test_random_growth_changes_outputs(batch):
    x, y = batch
    model = _with_random_bn(vgg((16, 16, 1), 5, width=0.25))
    grown = growth.grow(model, [2 * w for w in growth.widths_of(model)], "random", x, y)
    assert np.abs(grown(x, training=False).numpy() - model(x, training=False).numpy()).max() > 1e-3


@pytest.fixture(scope="module")
def digits_bottleneck():
    """A VGG with a one-channel bottleneck (conv3), briefly trained on scikit-learn's digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images[..., None] / 16).astype("float32"), digits.target
    keras.utils.set_random_seed(0)
    # Keras's BatchNorm momentum, the zoo default when this test was written: with 0.9 the
    # bottleneck still grows most (5.0x) but conv1 grows 3.1x, under the 2x margin below.
    model = vgg((8, 8, 1), 10, widths=[8, 8, 1, 16, 32, 32], bn_momentum=0.99)
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1200], y[:1200], epochs=3, batch_size=64, verbose=0)
    return model, x[:256], y[:256]


def test_the_layer_that_matters_most_grows_most(digits_bottleneck):
    """The bottleneck gets the largest share of new neurons."""
    model, x, y = digits_bottleneck
    _, report = growth.grow_to(model, int(count_params(model) * 1.3), "firefly", x, y, candidates=4)
    ratios = np.array(report["widths"]) / np.array(growth.widths_of(model))
    assert ratios.argmax() == 2 and ratios[2] >= 2 * np.delete(ratios, 2).max()
    assert len(set(ratios.round(3))) > 2  # the widths come out of the data, not one multiplier


def test_split_scores_predict_the_loss_decrease_of_each_split(digits_bottleneck):
    import tensorflow as tf

    model, x, y = digits_bottleneck
    probe = growth._Probe(model, [0] * 6, 0, x, y, split=True)
    scores, directions = probe.split_scores(0.1, 2, np.random.default_rng(0))

    def loss():
        logits = probe.net(x, training=False)
        return float(tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)))

    probe._set_split(None, 0.0)
    base, predicted, actual = loss(), [], []
    for i, k in [(i, k) for i in range(4) for k in range(min(8, len(scores[i])))]:
        alone = [np.zeros_like(v) for v in directions]
        alone[i][..., k] = directions[i][..., k]
        probe._set_split(alone, 0.1)
        actual.append(base - loss())
        predicted.append(scores[i][k])
    assert np.corrcoef(predicted, actual)[0, 1] > 0.9
    assert 0.5 < np.mean(actual) / np.mean(predicted) < 2


def test_firefly_ranks_split_and_new_candidates_across_layers(batch):
    x, y = batch
    model = _with_random_bn(small_cnn((16, 16, 1), 5, width=0.25))
    _, report = growth.grow_to(model, int(count_params(model) * 1.8), "firefly", x, y, candidates=2)
    old = growth.widths_of(model)
    assert [o + n + s for o, n, s in zip(old, report["new"], report["split"])] == report["widths"]
    _, only_split = growth.grow_to(model, int(count_params(model) * 1.8), "split", x, y)
    assert sum(only_split["new"]) == 0 and sum(only_split["split"]) > 0


def test_uniform_growth_keeps_the_best_scored_candidates(batch):
    x, y = batch
    model = vgg((16, 16, 1), 5, width=0.25)
    old = growth.widths_of(model)
    probe = growth._Probe(model, [6] * len(old), 0, x, y, split=False)
    scores = probe.new_scores(step=1.0)
    assert all(s.max() > 0 for s in scores)
    grown = growth.grow(model, [o + 2 for o in old], "uniform", x, y, candidates=3)
    best = old[0] + np.sort(np.argsort(-scores[0])[:2])
    kept = grown.get_layer("conv1").kernel.numpy()[..., old[0]:]
    np.testing.assert_allclose(kept, probe.net.get_layer("conv1").kernel.numpy()[..., best])


def test_new_channels_get_batch_statistics(batch):
    x, y = batch
    model = vgg((16, 16, 1), 5, width=0.25)
    grown = growth.grow(model, [w + 4 for w in growth.widths_of(model)], "uniform", x, y, candidates=2)
    conv = keras.Model(grown.inputs[0], grown.get_layer("conv1").output)(x, training=False).numpy()
    old = growth.widths_of(model)[0]
    np.testing.assert_allclose(grown.get_layer("bn1").moving_mean.numpy()[old:], conv.mean((0, 1, 2))[old:],
                               rtol=1e-4, atol=1e-6)


def test_param_count_matches_keras_and_targets_below_the_size_are_errors():
    for build in MODELS.values():
        model = build()
        assert growth.param_count(model, growth.widths_of(model)) == count_params(model)
    model = vgg((16, 16, 1), 5, width=0.25)
    with pytest.raises(KerasEdgeError, match="target"):
        growth.fit_widths(model, count_params(model) - 1)


def test_residual_models_grow_only_inside_blocks():
    assert [layer.name for layer in growth.growable_layers(resnet((16, 16, 1), 5))] == \
        ["block1_a_conv", "block2_a_conv", "block3_a_conv"]
    names = [layer.name for layer in growth.growable_layers(MODELS["mobilenet_v2"]())]
    assert "block2_expand" in names and not any(n.endswith("_project") and n != "block3_project" for n in names)


def test_model_without_growable_layers_is_rejected_clearly():
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(KerasEdgeError, match="no layer whose width can grow"):
        growth.widths_of(model)


def test_m_shot_targets_grow_geometrically_to_the_final_size():
    plan = growth.shot_targets(1000, 8000, 3)
    assert plan == [2000, 4000, 8000]


def test_grown_model_keeps_layer_settings(batch):
    model = vgg((16, 16, 1), 5, width=0.25, bn_momentum=0.9)
    grown, _ = growth.grow_to(model, count_params(model) + 500, "firefly", *batch, candidates=2)
    assert grown.get_layer("bn3").momentum == 0.9 and grown.get_layer("conv3").padding == "same"
