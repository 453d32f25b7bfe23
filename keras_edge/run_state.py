"""What a run has done so far: per-stage results, training MACs, and the per-epoch
history rows (on ``ctx.history``); saved in every checkpoint, summarised at the end."""

from __future__ import annotations

import dataclasses

from keras_edge.models import count_macs, count_params


@dataclasses.dataclass
class RunState:
    stage_results: dict = dataclasses.field(default_factory=dict)
    """Stage name -> its test metrics and time (``cached: true`` for a stage loaded from cache)."""
    train_macs: int = 0
    """MACs of every training step so far (``keras_edge.step_macs``)."""

    def checkpoint(self, ctx, plugin_states: dict, elapsed_s: float) -> dict:
        """The state a checkpoint holds, besides the model and optimizer variables."""
        return {"stage_index": ctx.stage_index, "epoch": ctx.epoch, "global_step": ctx.global_step,
                "history": ctx.history, "stage_results": self.stage_results, "train_macs": self.train_macs,
                "elapsed_s": elapsed_s, "plugins": plugin_states}

    def restore(self, state: dict, ctx) -> None:
        self.stage_results, self.train_macs = state["stage_results"], state["train_macs"]
        ctx.history, ctx.global_step = state["history"], state["global_step"]

    def summary(self, ctx, wall_time_s: float) -> dict:
        last = self.stage_results[ctx.recipe.stages[-1].name]
        return {
            "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
            "wall_time_s": wall_time_s, "params": count_params(ctx.model), "macs": count_macs(ctx.model),
            "train_macs": self.train_macs, "stages": self.stage_results,
            "stage_times_s": {name: r["time_s"] for name, r in self.stage_results.items()},
            "epochs": len(ctx.history), "recipe": ctx.recipe.source,
        }


def history_row(ctx, logs: dict) -> dict:
    """The row of ``metrics.csv`` for the epoch that just ended."""
    return {"stage": ctx.stage.name, "epoch": ctx.epoch + 1, **logs}
