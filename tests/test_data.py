import numpy as np
import pytest

from keras_edge.data import load_data
from keras_edge.data import tfds as tfds_module
from keras_edge.errors import DataError, RecipeError
from keras_edge.recipe import DataConfig


def test_fashion_mnist_from_debian_files():
    data = load_data(DataConfig(name="fashion_mnist", validation_fraction=0.1))
    assert data.x_train.shape == (54000, 28, 28, 1) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (10000, 28, 28, 1) and len(data.x_val) == 6000
    assert data.num_classes == 10 and set(np.unique(data.y_test)) == set(range(10))


def test_splits_are_deterministic_and_disjoint():
    a = load_data(DataConfig(name="synthetic", seed=3))
    b = load_data(DataConfig(name="synthetic", seed=3))
    np.testing.assert_array_equal(a.x_val, b.x_val)
    c = load_data(DataConfig(name="synthetic", seed=4, synthetic_examples=512))
    assert not np.array_equal(a.y_val, c.y_val)
    rows = {r.tobytes() for r in a.x_train}
    assert not any(r.tobytes() in rows for r in a.x_val)


def test_class_subset_is_relabelled():
    data = load_data(DataConfig(name="fashion_mnist", classes=(7, 2), test_limit=2000))
    assert data.num_classes == 2 and data.class_names == ["sneaker", "pullover"]
    assert set(np.unique(data.y_train)) == {0, 1}


def test_digits_are_28x28_and_not_fashion():
    data = load_data(DataConfig(name="digits"))
    assert data.input_shape == (28, 28, 1) and data.num_classes == 10
    assert 1000 < len(data.x_train) + len(data.x_val) < 1600


def test_train_pipeline_order_depends_on_seed_and_epoch_only():
    data = load_data(DataConfig(name="synthetic"))
    first = [b["label"].numpy() for b in data.train_dataset(32, seed=1, epoch=2)]
    again = [b["label"].numpy() for b in data.train_dataset(32, seed=1, epoch=2)]
    other = [b["label"].numpy() for b in data.train_dataset(32, seed=1, epoch=3)]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(other))
    batch = next(iter(data.train_dataset(32, seed=1)))
    assert batch["image"].dtype.name == "float32" and float(batch["image"].numpy().max()) <= 1.0


def test_image_folder(tmp_path):
    import tensorflow as tf

    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                image = np.full((10, 12, 3), 40 * i + (100 if label == "dog" else 0), np.uint8)
                tf.io.write_file(str(folder / f"{i}.png"), tf.io.encode_png(image))
    data = load_data(DataConfig(name=f"folder:{tmp_path}", image_size=16, validation_fraction=0.0))
    assert data.class_names == ["cat", "dog"] and data.input_shape == (16, 16, 3)
    assert len(data.x_train) == 6 and len(data.x_test) == 6


def test_resize_and_channels():
    data = load_data(DataConfig(name="synthetic", image_size=32, channels=3))
    assert data.input_shape == (32, 32, 3)


def test_tfds_offline_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_module, "_online", lambda timeout=3.0: False)
    with pytest.raises(DataError, match=r"tfds:mnist is not in .* network is unreachable; on a machine with network"):
        load_data(DataConfig(name="tfds:mnist", data_dir=str(tmp_path)))


def test_unknown_names():
    with pytest.raises(RecipeError, match="unknown dataset 'nope'; choose one of"):
        load_data(DataConfig(name="nope"))
    with pytest.raises(DataError, match="unknown tensorflow-datasets name 'no_such_set_xyz'"):
        load_data(DataConfig(name="tfds:no_such_set_xyz"))
    with pytest.raises(DataError, match="no train/ sub-folder"):
        load_data(DataConfig(name="folder:/nonexistent"))


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_data(DataConfig(name="fashion_mnist", data_dir=str(tmp_path)))
