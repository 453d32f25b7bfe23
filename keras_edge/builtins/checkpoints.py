"""Built-in plugin ``checkpoints``: the run's state after every epoch, for ``--resume``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from keras_edge import hookimpl
from keras_edge.checkpoint import save_checkpoint
from keras_edge.errors import RecipeError


class Checkpoints:
    """Writes ``RUN/checkpoints/s{stage}-e{epoch}`` atomically after every epoch."""

    autouse = True

    @dataclasses.dataclass(frozen=True)
    class Options:
        keep: int = 2
        """How many of the newest checkpoints to keep (older ones are deleted)."""

        def __post_init__(self):
            if self.keep < 1:
                raise RecipeError(f"plugins.checkpoints.keep = {self.keep} must be >= 1")

    @hookimpl
    def on_checkpoint(self, ctx, state, options):
        if ctx.run_dir is not None:
            save_checkpoint(Path(ctx.run_dir) / "checkpoints", state, ctx.model, ctx.optimizer, options.keep)
