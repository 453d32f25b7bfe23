#!/usr/bin/env python3
"""Device simulator: fine-tune an exported keras-edge model in the stock LiteRT runtime.

Uses only ``ai_edge_litert`` and NumPy (Pillow only to read an image folder), as a
Jetson or a Raspberry Pi would after ``pip install ai-edge-litert numpy``:

    python tools/litert_train.py model.tflite --data fashion_mnist --epochs 1 \\
        --weights-out weights.npz
    python tools/litert_train.py model.tflite --data folder:photos --restore weights.npz --epochs 0

It evaluates the model, trains it with the ``train`` signature (every example: the
last, short batch is padded with examples of weight 0), saves the weights and the
model's fingerprint from ``get_weights`` to ``.npz``, loads them into a fresh
interpreter with ``set_weights``, evaluates again, and prints a JSON report. Bad
input (labels outside the model's classes, images that are not uint8, weights of
another model) gets one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def read_idx(path):
    """An IDX file (gzip or plain), as in the MNIST family of datasets."""
    with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = np.frombuffer(data, ">i4", count=dims, offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion_mnist(folder):
    folder = Path(folder)
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")[..., None]
        labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int32)
        parts[split] = (images, labels)
    return parts


def load_folder(folder, size, channels, test_fraction, seed):
    """``folder/<class name>/*.png|jpg``; classes in sorted order; a seeded test split."""
    try:
        from PIL import Image
    except ImportError:
        fail("reading an image folder needs Pillow; pip install pillow")
    classes = sorted(p.name for p in Path(folder).iterdir() if p.is_dir())
    if not classes:
        fail(f"{folder} has no class sub-folders; use folder/<class>/<image>.png")
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((Path(folder) / name).iterdir()):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"):
                image = Image.open(path).convert("L" if channels == 1 else "RGB").resize((size[1], size[0]))
                images.append(np.asarray(image, np.uint8).reshape(*size, channels))
                labels.append(label)
    order = np.random.default_rng(seed).permutation(len(images))
    images, labels = np.stack(images)[order], np.array(labels, np.int32)[order]
    cut = int(len(images) * (1 - test_fraction))
    return {"train": (images[:cut], labels[:cut]), "test": (images[cut:], labels[cut:])}


def load_data(spec, input_shape, test_fraction, seed):
    kind, _, where = spec.partition(":")
    if kind == "fashion_mnist":
        return load_fashion_mnist(where or FASHION_MNIST)
    if kind == "folder":
        return load_folder(where, input_shape[:2], input_shape[2], test_fraction, seed)
    if kind == "npz":
        with np.load(where) as f:
            return {"train": (f["x_train"], f["y_train"].astype(np.int32)), "test": (f["x_test"], f["y_test"].astype(np.int32))}
    fail(f"unknown --data {spec!r}; use fashion_mnist[:DIR], folder:DIR or npz:FILE")


def as_float(images):
    return images.astype(np.float32) / 255.0


def check_examples(name, images, labels, num_classes):
    """Images uint8 (0-255) and labels in [0, num_classes), or exit 2 naming the first bad one."""
    if images.dtype != np.uint8:
        fail(f"{name} images are {images.dtype}; pass uint8 pixels 0-255 (the model is fed pixels / 255)")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        fail(f"{len(bad)} {name} labels are outside [0, {num_classes}), e.g. {labels[bad[0]]} at index {bad[0]}")


def get_weights(interpreter):
    """The flat weights vector and the model fingerprint (what the app persists)."""
    out = interpreter.get_signature_runner("get_weights")(dummy=np.int32(0))
    return {"weights": out["weights"], "fingerprint": out["fingerprint"]}


def restore(interpreter, path):
    """``set_weights`` from a ``.npz`` of ``get_weights``; exit 2 unless it fits this model."""
    try:
        with np.load(path) as saved:
            weights, fingerprint = saved["weights"], saved["fingerprint"]
    except (OSError, ValueError, KeyError) as exc:
        fail(f"cannot read weights from {path} ({exc}); pass an .npz with `weights` and `fingerprint` "
             "as this tool writes with --weights-out")
    if weights.dtype != np.float32 or weights.ndim != 1 or fingerprint.dtype != np.int32 or fingerprint.ndim != 1:
        fail(f"{path} holds weights {weights.dtype}{list(weights.shape)} and fingerprint "
             f"{fingerprint.dtype}{list(fingerprint.shape)}; expected float32[n] and int32[4]")
    status = int(interpreter.get_signature_runner("set_weights")(weights=weights, fingerprint=fingerprint)["status"])
    if status == 1:
        fail(f"{path} holds the weights of another model (fingerprint differs); nothing was restored")
    if status:
        fail(f"{path} holds {len(weights)} weights, not the number this model has; nothing was restored")


def accuracy(interpreter, images, labels, batch_size=256):
    infer = interpreter.get_signature_runner("infer")
    hits = 0
    for start in range(0, len(images), batch_size):
        logits = infer(x=as_float(images[start : start + batch_size]))["logits"]
        hits += int(np.sum(np.argmax(logits, -1) == labels[start : start + batch_size]))
    return hits / max(1, len(images))


def train(interpreter, images, labels, epochs, seed, learning_rate=0.0, masks=None):
    """Shuffled batches through the ``train`` signature, the last one padded with
    weight-0 examples; returns per-epoch mean losses, seconds and the guards' counts."""
    runner = interpreter.get_signature_runner("train")
    batch = runner.get_input_details()["x"]["shape"][0]
    rng = np.random.default_rng(seed)
    losses, seconds = [], 0.0
    counts = {"examples_used": 0, "bad_labels": 0, "bad_images": 0, "skipped_steps": 0}
    for _ in range(epochs):
        order = rng.permutation(len(images))
        epoch = []
        start = time.perf_counter()
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            pad = batch - len(idx)
            weight = np.r_[np.ones(len(idx)), np.zeros(pad)].astype(np.float32)
            idx = np.r_[idx, np.repeat(idx[:1], pad)]  # any image will do: weight 0 leaves it out
            inputs = {"x": as_float(images[idx]), "y": labels[idx], "sample_weight": weight,
                      "learning_rate": np.float32(learning_rate)}
            if masks is not None:
                inputs["masks"] = masks
            out = runner(**inputs)
            for key in ("examples_used", "bad_labels", "bad_images"):
                counts[key] += int(out[key])
            counts["skipped_steps"] += 1 - int(out["applied"])
            epoch.append(float(out["loss"]))
        seconds += time.perf_counter() - start
        losses.append(float(np.mean(epoch)))
    return losses, seconds, counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a .tflite written by `keras-edge export`")
    parser.add_argument("--data", default="fashion_mnist", help="fashion_mnist[:DIR], folder:DIR or npz:FILE (x_train, y_train, x_test, y_test)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=0.0,
                        help="rate of each train step (0: the rate the model was exported with)")
    parser.add_argument("--limit", type=int, default=0, help="use at most this many training images (0: all)")
    parser.add_argument("--test-limit", type=int, default=0, help="evaluate on at most this many test images (0: all)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="test share of an image folder")
    parser.add_argument("--mask-fraction", type=float, default=1.0,
                        help="with a `masks` input: train this random fraction of the neurons (1: all)")
    parser.add_argument("--restore", help="start from weights saved by an earlier run (.npz)")
    parser.add_argument("--weights-out", default="weights.npz", help="where get_weights is saved")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        interpreter = Interpreter(model_path=args.model)
    except ValueError as exc:
        fail(f"cannot load {args.model}: {exc}")
    signatures = interpreter.get_signature_list()
    if not {"train", "infer", "get_weights", "set_weights"} <= set(signatures) or \
            "sample_weight" not in signatures["train"]["inputs"]:
        fail(f"{args.model} has signatures {sorted(signatures)}; export it with this version of `keras-edge export`")
    train_inputs = interpreter.get_signature_runner("train").get_input_details()
    input_shape = tuple(int(n) for n in train_inputs["x"]["shape"][1:])
    num_classes = int(interpreter.get_signature_runner("infer").get_output_details()["logits"]["shape"][-1])
    data = load_data(args.data, input_shape, args.test_fraction, args.seed)
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    if x_train.shape[1:] != input_shape:
        fail(f"the data has images of shape {x_train.shape[1:]} but the model takes {input_shape}")
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    if args.test_limit:
        x_test, y_test = x_test[: args.test_limit], y_test[: args.test_limit]
    check_examples("training", x_train, y_train, num_classes)
    check_examples("test", x_test, y_test, num_classes)
    if args.restore:
        restore(interpreter, args.restore)
    masks = None
    if "masks" in train_inputs:
        n = int(train_inputs["masks"]["shape"][0])
        masks = (np.random.default_rng(args.seed).random(n) < args.mask_fraction).astype(np.float32)

    report = {"model": args.model, "train_images": len(x_train), "test_images": len(x_test),
              "accuracy_before": accuracy(interpreter, x_test, y_test)}
    losses, seconds, counts = train(interpreter, x_train, y_train, args.epochs, args.seed, args.learning_rate, masks)
    report.update(epoch_losses=losses, train_seconds=seconds, **counts,
                  images_per_second=counts["examples_used"] / seconds if seconds else None,
                  accuracy_after=accuracy(interpreter, x_test, y_test))
    np.savez(args.weights_out, **get_weights(interpreter))
    fresh = Interpreter(model_path=args.model)
    restore(fresh, args.weights_out)
    report.update(weights_file=args.weights_out, accuracy_restored=accuracy(fresh, x_test, y_test))
    print(json.dumps(report, indent=2, default=float))
    return report


if __name__ == "__main__":
    main()
