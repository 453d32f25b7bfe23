"""AugMix / ERA: ops match PIL, chains are per sample, it runs in tf.data; the JSD loss."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from keras_edge.errors import RecipeError
from keras_edge.recipe import parse_recipe
from keras_edge_gearnn import augmix
from keras_edge_gearnn.era import Options
from keras_edge_gearnn.jsd import jensen_shannon
from keras_edge.testing import tiny_recipe as tiny


@pytest.fixture(scope="module", params=[1, 3], ids=["gray", "rgb"])
def images(request):
    return np.random.default_rng(0).integers(0, 220, (4, 16, 16, request.param)).astype(np.uint8)


def _pil(fn, image):
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    return np.array(fn(pil)).reshape(image.shape).astype(int)


def test_pixel_ops_match_pil(images):
    x = tf.constant(images / 255.0, tf.float32)
    level = tf.constant([3.0, 5.0, 7.0, 9.9])
    ours = {"autocontrast": augmix.autocontrast(x), "equalize": augmix.equalize(x),
            "posterize": augmix.posterize(x, level), "solarize": augmix.solarize(x, level)}
    for i, image in enumerate(images):
        lv = float(level[i])
        expected = {"autocontrast": _pil(ImageOps.autocontrast, image), "equalize": _pil(ImageOps.equalize, image),
                    "posterize": _pil(lambda p: ImageOps.posterize(p, 4 - int(lv * 4 / 10)), image),
                    "solarize": _pil(lambda p: ImageOps.solarize(p, 256 - int(lv * 256 / 10)), image)}
        for name, value in expected.items():
            np.testing.assert_array_equal(np.round(ours[name][i].numpy() * 255).astype(int), value, err_msg=name)


def test_translate_moves_by_the_level_in_either_direction():
    x = np.zeros((16, 12, 12, 1), np.float32)
    x[:, 6, 6] = 1.0
    out = augmix.apply_ops(tf.constant(x), tf.fill([16], augmix.OPS.index("translate_x")),
                           tf.fill([16], 9.0), [0, 1]).numpy()
    cols = np.argwhere(out[:, 6, :, 0] > 0.5)[:, 1]  # shift = floor(9 * 12/3 / 10) = 3
    assert set(cols) == {3, 9}


def test_chains_differ_per_sample_and_stay_in_range():
    x = tf.tile(tf.random.stateless_uniform([1, 16, 16, 3], seed=[1, 2]), [8, 1, 1, 1])
    out = augmix.augment_and_mix(x, [3, 4], width=3, depth=3, severity=3, views=2).numpy()
    assert out.shape == (2, *x.shape) and out.min() >= 0.0 and out.max() <= 1.0
    distinct = {image.tobytes() for image in out.reshape(16, -1)}
    assert len(distinct) == 16


def test_runs_inside_tf_data_with_views():
    from keras_edge_gearnn.era import RobustAugmentation

    options = Options(width=1, depth=3, views=4)
    images = tf.random.uniform([10, 16, 16, 1])
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": tf.zeros([10], tf.int32)}).batch(5)
    ds = ds.map(lambda b: {**b, "seed": tf.constant([5, 6])})
    ds = ds.map(lambda b: RobustAugmentation().augment_batch(b, options), num_parallel_calls=tf.data.AUTOTUNE)
    batch = next(iter(ds))
    assert len(batch["views"]) == 3 and batch["views"][0].shape == (5, 16, 16, 1)
    np.testing.assert_array_equal(batch["image"].numpy(), images[:5].numpy())


def test_views_depend_only_on_the_seed():
    x = tf.random.stateless_uniform([4, 16, 16, 1], seed=[1, 2])
    again = [augmix.augment_and_mix(x, [7, 8], views=2).numpy() for _ in range(2)]
    other = augmix.augment_and_mix(x, [7, 9], views=2).numpy()
    np.testing.assert_array_equal(again[0], again[1])
    assert not np.allclose(again[0], other)


def test_jsd_is_zero_for_equal_predictions_and_matches_numpy():
    logits = tf.random.stateless_normal([6, 5], seed=[0, 1])
    assert float(jensen_shannon([logits, logits, logits])) == pytest.approx(0.0, abs=1e-6)
    others = [logits, tf.random.stateless_normal([6, 5], seed=[0, 2]), tf.random.stateless_normal([6, 5], seed=[0, 3])]
    p = [tf.nn.softmax(o).numpy() for o in others]
    m = np.mean(p, axis=0)
    expected = np.mean([np.sum(q * np.log(q / m), axis=1).mean() for q in p])
    assert float(jensen_shannon(others)) == pytest.approx(expected, rel=1e-4)
    assert expected > 0.01


@pytest.mark.parametrize("key,value", [("width", 0), ("severity", 11), ("ops", ["blur"]), ("views", 0)])
def test_bad_options_are_rejected(key, value):
    with pytest.raises(RecipeError, match=f"plugins.era.{key}"):
        parse_recipe(tiny(plugins={"enable": ["era"], "era": {key: value}}))
