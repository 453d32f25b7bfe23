"""Pareto front, MACs buckets and mean Pareto accuracy of evaluated subnets, and their plot."""

from __future__ import annotations

import numpy as np


def pareto_front(points: list[dict]) -> list[dict]:
    """Points no other point beats on both MACs (lower) and accuracy (higher), by MACs."""
    front, best = [], -np.inf
    for p in sorted(points, key=lambda p: (p["macs"], -p["accuracy"])):
        if p["accuracy"] > best:
            front.append(p)
            best = p["accuracy"]
    return front


def bucket_best(points: list[dict], buckets: int = 6) -> list[dict]:
    """The most accurate point of each of ``buckets`` equal MACs ranges (empty ranges skipped)."""
    macs = np.array([p["macs"] for p in points], float)
    edges = np.linspace(macs.min(), macs.max(), buckets + 1)
    index = np.clip(np.searchsorted(edges, macs, side="right") - 1, 0, buckets - 1)
    best = []
    for b in range(buckets):
        members = [p for p, i in zip(points, index) if i == b]
        if members:
            top = max(members, key=lambda p: p["accuracy"])
            best.append({**top, "bucket": b, "bucket_macs": [float(edges[b]), float(edges[b + 1])]})
    return best


def mean_pareto_accuracy(front: list[dict], low: float, high: float) -> float:
    """Area under a curve of (MACs, accuracy) points (sorted by MACs) over MACs normalised to [0, 1].

    Trapezoids between points; before the first and after the last point the accuracy is
    held at their values. On the whole Pareto front it is the "front" figure; on the
    best subnet of each bucket it is the paper's metric (``bucket_pareto_accuracy``).
    """
    if high <= low:
        return float(front[-1]["accuracy"])
    x = [(p["macs"] - low) / (high - low) for p in front]
    y = [p["accuracy"] for p in front]
    if x[-1] < 1.0:
        x, y = x + [1.0], y + [y[-1]]
    if x[0] > 0.0:
        x, y = [0.0] + x, [y[0]] + y
    return float(np.trapezoid(y, x))


def bucket_pareto_accuracy(points: list[dict], buckets: int = 6) -> float:
    """The paper's mean Pareto accuracy: the most accurate subnet of each of ``buckets`` equal
    MACs ranges, and the area under their accuracy over MACs normalised to [0, 1]
    (trapezoids, accuracy held flat to both ends of the range)."""
    macs = [p["macs"] for p in points]
    best = sorted(bucket_best(points, buckets), key=lambda p: p["macs"])
    return mean_pareto_accuracy(best, min(macs), max(macs))


def summary_lines(report: dict) -> list[str]:
    """A terminal summary of an ``evaluate --subnets`` report."""
    m = 1e6
    lines = [f"{report['num_evaluated']} subnets on {report['examples']} {report['split']} examples, BatchNorm "
             f"recalibrated: mean Pareto accuracy {100 * report['mean_pareto_accuracy']:.2f}% (best of "
             f"{len(report['buckets'])} MACs buckets; whole front {100 * report['front_pareto_accuracy']:.2f}%)",
             f"smallest {100 * report['smallest']['accuracy']:.2f}% at {report['smallest']['macs'] / m:.2f} M MACs, "
             f"largest {100 * report['largest']['accuracy']:.2f}% at {report['largest']['macs'] / m:.2f} M MACs",
             "bucket  MACs range (M)   best subnet (M MACs)  accuracy"]
    for b in report["buckets"]:
        low, high = b["bucket_macs"]
        lines.append(f"{b['bucket']:6d}  {low / m:6.2f} - {high / m:<6.2f}  {b['macs'] / m:20.2f}  "
                     f"{100 * b['accuracy']:7.2f}%")
    return lines


def plot_fronts(reports: dict, path) -> None:
    """PNG of accuracy against MACs: every subnet (dots) and each run's front (line).

    ``reports`` maps a label to a subnets report (``evaluate --subnets`` output).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (label, report) in enumerate(reports.items()):
        color = f"C{i}"
        pts = report["points"]
        ax.scatter([p["macs"] / 1e6 for p in pts], [100 * p["accuracy"] for p in pts], s=10, alpha=0.3, color=color)
        front = report["pareto_front"]
        ax.plot([p["macs"] / 1e6 for p in front], [100 * p["accuracy"] for p in front], "-o", ms=4, color=color,
                label=f"{label} (mean Pareto acc. {100 * report['mean_pareto_accuracy']:.2f}%)")
    ax.set_xlabel("MACs per example (millions)")
    ax.set_ylabel(f"{next(iter(reports.values()))['split']} accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
