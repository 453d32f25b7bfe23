"""The 15 corruptions: shapes, ranges, determinism, severity, caching and the report."""

import json

import keras
import numpy as np
import pytest

from keras_edge_gearnn import corruptions
from keras_edge_gearnn.robustness import Options, corrupted_set, evaluate_corruptions, write_report

# corruptions whose distortion must grow from severity 1 to 5 (glass, elastic and
# pixelate/JPEG at 28 px are not monotone in mean pixel change)
MONOTONE = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur",
            "snow", "fog", "brightness", "contrast")


@pytest.fixture(scope="module", params=[(28, 1), (32, 3)], ids=["28x28 gray", "32x32 rgb"])
def images(request):
    size, channels = request.param
    rng = np.random.default_rng(0)
    x = np.zeros((6, size, size, channels))
    x[:, 6:-6, 8:-8] = rng.uniform(0.4, 0.9, (6, 1, 1, channels))  # a bright object on a dark background
    return x


@pytest.mark.parametrize("name", list(corruptions.CORRUPTIONS))
def test_corruption_is_deterministic_in_range_and_changes_the_image(name, images):
    fn = corruptions.CORRUPTIONS[name]
    mild = fn(images, 1, np.random.default_rng(3))
    strong = fn(images, 5, np.random.default_rng(3))
    assert mild.shape == images.shape and mild.min() >= 0 and mild.max() <= 1
    np.testing.assert_array_equal(strong, fn(images, 5, np.random.default_rng(3)))
    assert np.abs(strong - images).mean() > 1e-3
    if name in MONOTONE:
        assert np.abs(strong - images).mean() > np.abs(mild - images).mean()


def test_fifteen_corruptions():
    assert len(corruptions.CORRUPTIONS) == 15


def test_frost_texture_is_generated_deterministically():
    a, b = corruptions.frost_texture(np.random.default_rng(5)), corruptions.frost_texture(np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape[-1] == 3 and 0.1 < a.mean() < 0.6 and a.std() > 0.05


def test_corrupted_sets_are_cached(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (4, 28, 28, 1)).astype(np.uint8)
    first = corrupted_set(images, "fog", 0, tmp_path)
    files = list(tmp_path.glob("fog-*.npy"))
    assert first.shape == (5, 4, 28, 28, 1) and first.dtype == np.uint8 and len(files) == 1
    np.testing.assert_array_equal(first, np.load(files[0]))
    np.testing.assert_array_equal(first, corrupted_set(images, "fog", 0, tmp_path))
    assert not np.array_equal(first, corrupted_set(images, "fog", 1, tmp_path))


def test_evaluation_table_and_report(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (20, 28, 28, 1)).astype(np.uint8)
    y = (x.mean(axis=(1, 2, 3)) > 127).astype(int)
    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs)))
    result = evaluate_corruptions(model, x, y, Options(examples=12, cache_dir=str(tmp_path / "cache")))
    assert result["examples"] == 12 and list(result["accuracy"]) == list(corruptions.CORRUPTIONS)
    table = np.array(list(result["accuracy"].values()))
    assert table.shape == (15, 5) and ((table >= 0) & (table <= 1)).all()
    assert result["mean_corruption_accuracy"] == pytest.approx(table.mean())
    write_report(result, tmp_path)
    assert json.loads((tmp_path / "corruptions.json").read_text())["accuracy"]["fog"] == result["accuracy"]["fog"]
    assert (tmp_path / "corruptions.png").stat().st_size > 1000
