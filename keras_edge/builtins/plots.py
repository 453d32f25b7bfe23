"""Built-in plugin ``plots``: ``RUN/training_curves.png`` at the end of a run."""

from __future__ import annotations

from pathlib import Path

from keras_edge import hookimpl, io


class Plots:
    """Loss and accuracy per epoch of every stage, train and validation."""

    autouse = True

    @hookimpl(trylast=True)
    def on_run_end(self, ctx):
        if ctx.run_dir is not None and ctx.history:
            with io.atomic_path(Path(ctx.run_dir) / "training_curves.png") as tmp:
                plot_history(ctx.history, tmp)


def plot_history(history: list[dict], path) -> None:
    """Loss and accuracy per epoch (train and validation), one line per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = list(range(1, len(history) + 1))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(x, [row.get(metric) for row in history], marker=".", label=f"train {metric}")
        ax.plot(x, [row.get(f"val_{metric}") for row in history], marker=".", label=f"val {metric}")
        stage = None
        for i, row in enumerate(history):
            if row["stage"] != stage:
                stage = row["stage"]
                ax.axvline(i + 0.5, color="grey", lw=0.5)
                ax.text(i + 0.6, ax.get_ylim()[1], stage, va="top", fontsize=8, color="grey")
        ax.set_xlabel("epoch (all stages)")
        ax.set_ylabel(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
