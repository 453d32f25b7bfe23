"""The ``corruptions`` plugin: accuracy under the 15 common corruptions x 5 severities.

``keras-edge evaluate RUN_DIR --corruptions`` (or ``at_run_end = true``) reports the
clean accuracy, the mean corruption accuracy and the per-corruption x severity table,
written to ``corruptions.json`` and ``corruptions.png`` in the run folder. Corrupted
test sets are generated once per (images, seed) and cached as ``.npy`` files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib

import numpy as np
import tensorflow as tf

from keras_edge import hookimpl
from keras_edge.errors import RecipeError
from keras_edge_gearnn.corruptions import CORRUPTIONS

SEVERITIES = (1, 2, 3, 4, 5)
_VERSION = "2"  # bump when a corruption changes, to invalidate caches (2: frost, pixelate, glass_blur)


@dataclasses.dataclass(frozen=True)
class Options:
    """Options of ``[plugins.corruptions]``."""

    examples: int = 1000
    """Test examples corrupted (a seeded random subset of the test split)."""
    seed: int = 0
    """Seed of the subset and of every corruption's randomness."""
    cache_dir: str = ""
    """Where corrupted sets are cached; empty: ``$KERAS_EDGE_CACHE`` or ``~/.cache/keras-edge``, + ``/corruptions``."""
    batch_size: int = 500
    """Evaluation batch size."""
    at_run_end: bool = False
    """Also evaluate at the end of every run and add the result to ``summary.json``."""

    def __post_init__(self):
        if self.examples < 1 or self.batch_size < 1:
            raise RecipeError("plugins.corruptions: examples and batch_size must be at least 1")


def corrupted_set(images, name: str, seed: int, cache_dir) -> np.ndarray:
    """``images`` (uint8 NHWC) under corruption ``name`` at severities 1..5: uint8 (5, N, H, W, C)."""
    digest = hashlib.sha1(images.tobytes() + f"{images.shape}{name}{seed}{_VERSION}".encode()).hexdigest()[:16]
    path = pathlib.Path(cache_dir) / f"{name}-{digest}.npy"
    if path.exists():
        return np.load(path)
    index = list(CORRUPTIONS).index(name)
    x = images.astype(np.float64) / 255.0
    out = np.stack([np.round(CORRUPTIONS[name](x, s, np.random.default_rng([seed, index, s])) * 255).astype(np.uint8)
                    for s in SEVERITIES])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(partial, out)
    partial.replace(path)
    return out


def evaluate_corruptions(model, x_test, y_test, options: Options = Options()) -> dict:
    """Clean accuracy, mean corruption accuracy and the per-corruption x severity accuracies."""
    pick = np.sort(np.random.default_rng(options.seed).permutation(len(x_test))[:options.examples])
    images, labels = x_test[pick], np.asarray(y_test)[pick]
    cache = options.cache_dir or os.path.join(
        os.environ.get("KERAS_EDGE_CACHE", os.path.expanduser("~/.cache/keras-edge")), "corruptions")

    predict = tf.function(lambda batch: tf.argmax(model(batch, training=False), axis=-1), reduce_retracing=True)

    def accuracy(images_):
        predicted = np.concatenate([predict(tf.constant(images_[i:i + options.batch_size], tf.float32) / 255.0)
                                    for i in range(0, len(images_), options.batch_size)])
        return float(np.mean(predicted == labels))

    table = {name: [accuracy(severe) for severe in corrupted_set(images, name, options.seed, cache)]
             for name in CORRUPTIONS}
    return {
        "clean_accuracy": accuracy(images),
        "mean_corruption_accuracy": float(np.mean(list(table.values()))),
        "accuracy": table,
        "severities": list(SEVERITIES),
        "examples": int(len(images)),
        "seed": options.seed,
    }


def format_table(result: dict) -> str:
    """The per-corruption x severity accuracies as a text table (percent)."""
    lines = [f"{'corruption':18s}" + "".join(f"{s:>7d}" for s in result["severities"]) + "   mean"]
    for name, row in result["accuracy"].items():
        lines.append(f"{name:18s}" + "".join(f"{100 * a:7.1f}" for a in row) + f"{100 * np.mean(row):7.1f}")
    lines.append(f"clean {100 * result['clean_accuracy']:.1f}%, mean corruption accuracy "
                 f"{100 * result['mean_corruption_accuracy']:.1f}% on {result['examples']} test examples")
    return "\n".join(lines)


def write_report(result: dict, run_dir) -> None:
    """Write ``corruptions.json`` and a heat map ``corruptions.png`` into ``run_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = pathlib.Path(run_dir)
    (run_dir / "corruptions.json").write_text(json.dumps(result, indent=2))
    names = list(result["accuracy"])
    values = np.array([result["accuracy"][n] for n in names]) * 100
    fig, ax = plt.subplots(figsize=(5.5, 7))
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 60 else "black")
    ax.set_xticks(range(len(result["severities"])), result["severities"])
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("severity")
    ax.set_title(f"accuracy (%): clean {100 * result['clean_accuracy']:.1f}, "
                 f"corrupted mean {100 * result['mean_corruption_accuracy']:.1f}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    fig.savefig(run_dir / "corruptions.png", dpi=100)
    plt.close(fig)


class CorruptionBenchmark:
    """Implements ``evaluate --corruptions`` and, optionally, an end-of-run evaluation.

    Always active (``autouse``): it does nothing unless asked for.
    """

    Options = Options
    autouse = True

    @hookimpl
    def evaluate_extra(self, ctx, model, flags, options):
        if not flags.get("corruptions"):
            return None
        result = self._evaluate(ctx, model, options)
        print(format_table(result), flush=True)
        return {"corruption_clean_accuracy": result["clean_accuracy"],
                "mean_corruption_accuracy": result["mean_corruption_accuracy"], "corruptions": result}

    @hookimpl
    def on_run_end(self, ctx, summary, options):
        if options.at_run_end:
            result = self._evaluate(ctx, ctx.model, options)
            summary["corruptions"] = {k: result[k] for k in ("clean_accuracy", "mean_corruption_accuracy")}

    @staticmethod
    def _evaluate(ctx, model, options):
        result = evaluate_corruptions(model, ctx.data.x_test, ctx.data.y_test, options)
        if ctx.run_dir is not None:
            write_report(result, ctx.run_dir)
        return result
