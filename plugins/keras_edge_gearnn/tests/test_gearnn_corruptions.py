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
    assert np.abs(strong - images).mean() > (1e-4 if name == "pixelate" else 1e-3)  # BOX blocks move only edges
    if name in MONOTONE:
        assert np.abs(strong - images).mean() > np.abs(mild - images).mean()


def test_fifteen_corruptions():
    assert len(corruptions.CORRUPTIONS) == 15


def test_frost_textures_have_the_photographs_statistics():
    for photo, (h, w, rgb, std, neighbour) in enumerate(corruptions.FROST_PHOTOS):
        texture = corruptions.frost_texture(photo, np.random.default_rng(photo))
        mean, measured_std, measured_neighbour = corruptions.photo_statistics(texture)
        assert texture.shape == (h, w, 3)
        np.testing.assert_allclose(mean, rgb, atol=0.02)
        assert measured_std == pytest.approx(std, rel=0.15) and measured_neighbour == pytest.approx(neighbour, abs=0.1)


def test_frost_is_as_bright_as_the_reference_photographs():
    """At severity 5 a black image becomes 0.45 x a photograph: gray means 0.48-0.80, so 0.21-0.36."""
    out = corruptions.frost(np.zeros((200, 28, 28, 1)), 5, np.random.default_rng(0))
    gray_means = [np.dot(rgb, [0.299, 0.587, 0.114]) for _, _, rgb, _, _ in corruptions.FROST_PHOTOS]
    assert 0.45 * min(gray_means) - 0.02 < out.mean() < 0.45 * max(gray_means) + 0.02
    per_image = out.mean(axis=(1, 2, 3))
    assert per_image.std() > 0.03  # each image draws its own photograph


def test_pixelate_makes_blocks_like_pillow_box():
    x = np.random.default_rng(0).random((3, 28, 28, 1))
    out = corruptions.pixelate(x, 5, None)  # 28 -> int(28 * 0.65) = 18 -> 28
    repeated_columns = np.all(out[:, :, 1:] == out[:, :, :-1], axis=(0, 1, 3)).sum()
    assert repeated_columns >= 28 - 18


def test_glass_blur_copies_the_neighbour_as_the_reference_does():
    x = np.random.default_rng(0).random((1, 12, 12, 3))
    ours = corruptions.glass_blur(x, 4, np.random.default_rng(7))
    rng, sigma = np.random.default_rng(7), 0.25
    ref = np.floor(corruptions._blur(x, sigma) * 255)[0] / 255  # the reference loop, on an RGB pixel view
    for _ in range(2):
        for h in range(12 - 1, 1, -1):
            for w in range(12 - 1, 1, -1):
                dx, dy = rng.integers(-1, 1, size=(2, 1))[:, 0]
                ref[h, w], ref[h + dy, w + dx] = ref[h + dy, w + dx], ref[h, w]
    np.testing.assert_allclose(ours[0], np.clip(corruptions._blur(ref[None], sigma), 0, 1)[0], atol=1e-12)


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
