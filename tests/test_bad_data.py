"""Damaged data and run files end in one line naming the file: truncated or mixed-up
Fashion-MNIST IDX files, unreadable images, labels outside the class list, a damaged
checkpoint."""

import gzip
import json

import numpy as np
import pytest

from tests.test_cli import TINY_TOML, run_cli, write


def idx(array) -> bytes:
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def fashion_folder(tmp_path, n_train=64, n_train_labels=64, damage=None):
    folder = tmp_path / "fmnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte": idx(rng.integers(0, 255, (n_train, 28, 28))),
             "train-labels-idx1-ubyte": idx(np.arange(n_train_labels) % 10),
             "t10k-images-idx3-ubyte": idx(rng.integers(0, 255, (16, 28, 28))),
             "t10k-labels-idx1-ubyte": idx(np.arange(16) % 10)}
    for name, data in files.items():
        if damage == "truncate" and name.startswith("train-images"):
            data = data[: len(data) // 2]
        packed = gzip.compress(data)
        if damage == "bad-gzip" and name.startswith("train-images"):
            packed = packed[:10] + b"garbage" * 10
        (folder / f"{name}.gz").write_bytes(packed)
    return folder


def run_recipe_text(tmp_path, capsys, text):
    recipe = write(tmp_path / "r.toml", text)
    return run_cli(["run", recipe, "--out", str(tmp_path / "out")], capsys)


def fashion_recipe(folder):
    return TINY_TOML.replace('name = "synthetic"', f'name = "fashion_mnist"\ndata_dir = "{folder}"')


@pytest.mark.parametrize("damage, fragment", [
    ("truncate", "truncated or damaged"),
    ("bad-gzip", "cannot read"),
])
def test_damaged_fashion_mnist_files_are_named(tmp_path, capsys, damage, fragment):
    folder = fashion_folder(tmp_path, damage=damage)
    code, _, err = run_recipe_text(tmp_path, capsys, fashion_recipe(folder))
    assert code == 2 and err.count("\n") == 1 and fragment in err, err
    assert "train-images-idx3-ubyte.gz" in err and "--reinstall" in err


def test_image_and_label_counts_that_differ_are_refused(tmp_path, capsys):
    folder = fashion_folder(tmp_path, n_train=64, n_train_labels=60)
    code, _, err = run_recipe_text(tmp_path, capsys, fashion_recipe(folder))
    assert code == 2 and "64 images but 60 labels" in err, err


def test_a_corrupt_image_in_a_folder_dataset_is_named(tmp_path, capsys):
    import keras

    for cls in ("a", "b"):
        (tmp_path / "img" / "train" / cls).mkdir(parents=True)
        for i in range(3):
            keras.utils.save_img(tmp_path / "img" / "train" / cls / f"{i}.png", np.zeros((8, 8, 3), np.uint8))
    bad = tmp_path / "img" / "train" / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    text = TINY_TOML.replace('name = "synthetic"', f'name = "folder:{tmp_path / "img"}"\nimage_size = 8')
    code, _, err = run_recipe_text(tmp_path, capsys, text.replace("batch_size = 32", "batch_size = 2"))
    assert code == 2 and err.count("\n") == 1 and str(bad) in err, err


def test_labels_outside_the_class_list_are_refused_at_load():
    from keras_edge.data import Arrays, check_arrays
    from keras_edge.errors import DataError

    x = np.zeros((4, 8, 8, 1), np.uint8)
    arrays = Arrays(x, np.array([0, 1, 2, 5]), x, np.array([0, 1, 0, 1]), ["a", "b", "c"])
    with pytest.raises(DataError, match=r"train labels span 0..5 but there are 3 classes"):
        check_arrays(arrays, "mine")
    arrays = Arrays(x, np.array([0, 1, 0, 1]), x, np.array([0, -1, 0, 1]), ["a", "b"])
    with pytest.raises(DataError, match="test labels span -1..1"):
        check_arrays(arrays, "mine")


def test_a_damaged_checkpoint_state_is_one_line(tmp_path, capsys):
    recipe = write(tmp_path / "r.toml", TINY_TOML.replace("epochs = 1", "epochs = 2"))
    out = tmp_path / "out"
    code, _, err = run_cli(["run", recipe, "--out", str(out)], capsys)
    assert code == 0, err
    for state in (out / "checkpoints").glob("*/state.json"):
        state.write_text(json.dumps({"epoch": 0}))
    code, _, err = run_cli(["run", recipe, "--out", str(out), "--resume"], capsys)
    assert code == 2 and err.count("\n") == 1 and "is unreadable" in err and "state.json lacks" in err, err
