"""Built-in plugin ``summary``: the trained model and ``summary.json`` at the end of a run."""

from __future__ import annotations

import json
from pathlib import Path

from keras_edge import hookimpl, io


class Summary:
    """Writes ``RUN/model.keras`` and ``RUN/summary.json`` (last, so other plugins' entries are in)."""

    autouse = True

    @hookimpl(trylast=True)
    def on_run_end(self, ctx, summary):
        if ctx.run_dir is None:
            return
        with io.atomic_path(Path(ctx.run_dir) / "model.keras") as tmp:
            ctx.model.save(tmp)
        io.write_text(Path(ctx.run_dir) / "summary.json", json.dumps(summary, indent=2, default=float) + "\n")
