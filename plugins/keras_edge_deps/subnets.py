"""Evaluate many subnets of a supernet: BatchNorm recalibration, MACs and accuracy, Pareto summary."""

from __future__ import annotations

import contextlib

import numpy as np

from keras_edge_deps.extract import calibrate_bn, predict_logits
from keras_edge_deps.pareto import bucket_best, bucket_pareto_accuracy, mean_pareto_accuracy, pareto_front


def calibration_batches(data, batches: int, batch_size: int, seed: int) -> list:
    """The first ``batches`` shuffled training batches (images only), reused for every subnet."""
    dataset = data.train_dataset(min(batch_size, len(data.x_train)), seed)
    return [batch["image"] for batch in dataset.take(batches)]


@contextlib.contextmanager
def kept_statistics(model):
    """Restore the model's BatchNorm statistics (non-trainable weights) on exit."""
    saved = [v.numpy() for v in model.non_trainable_variables]
    try:
        yield
    finally:
        for var, value in zip(model.non_trainable_variables, saved):
            var.assign(value)


def subnet_accuracy(model, config, calibration, images, labels) -> float:
    """Accuracy of subnet ``config`` after recalibrating its BatchNorm on ``calibration``."""
    calibrate_bn(model, config, calibration)
    return float(np.mean(np.argmax(predict_logits(model, config, images), -1) == labels))


def evaluate_subnets(model, data, options) -> dict:
    """Sample ``options.num_samples`` subnets plus the smallest and largest; report the Pareto summary."""
    space = model.space
    rng = np.random.default_rng(options.seed)
    configs = {tuple(space.smallest()): "smallest", tuple(space.largest()): "largest"}
    for _ in range(50 * options.num_samples):
        if len(configs) >= options.num_samples + 2:
            break
        configs.setdefault(tuple(space.sample(rng)), "random")
    images, labels = data.split(options.split)
    if options.eval_limit:
        images, labels = images[:options.eval_limit], labels[:options.eval_limit]
    calibration = calibration_batches(data, options.calibration_batches, options.calibration_batch_size,
                                      options.seed)
    points = []
    with kept_statistics(model):
        for config, kind in configs.items():
            accuracy = subnet_accuracy(model, np.array(config, np.int32), calibration, images, labels)
            points.append({"kind": kind, "macs": model.subnet_macs(config), "accuracy": accuracy,
                           "config": list(config), "arch": space.decode(config)})
    front = pareto_front(points)
    low, high = min(p["macs"] for p in points), max(p["macs"] for p in points)
    by_kind = {p["kind"]: p for p in points if p["kind"] != "random"}
    return {"split": options.split, "examples": int(len(labels)), "num_evaluated": len(points),
            "smallest": {k: by_kind["smallest"][k] for k in ("macs", "accuracy")},
            "largest": {k: by_kind["largest"][k] for k in ("macs", "accuracy")},
            "mean_pareto_accuracy": bucket_pareto_accuracy(points, options.buckets),
            "front_pareto_accuracy": mean_pareto_accuracy(front, low, high),
            "buckets": bucket_best(points, options.buckets), "pareto_front": front, "points": points}


def headline(model, data, options) -> dict:
    """What a user deploys: the full model and the smallest subnet, BatchNorm recalibrated, on the test split."""
    images, labels = data.split("test")
    calibration = calibration_batches(data, options.calibration_batches, options.calibration_batch_size,
                                      options.seed)
    with kept_statistics(model):
        full = subnet_accuracy(model, None, calibration, images, labels)
        smallest = subnet_accuracy(model, model.space.smallest(), calibration, images, labels)
    return {"test_accuracy": full, "largest_macs": model.subnet_macs(None), "smallest_test_accuracy": smallest,
            "smallest_macs": model.subnet_macs(model.space.smallest())}
