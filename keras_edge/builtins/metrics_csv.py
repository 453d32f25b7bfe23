"""Built-in plugin ``metrics_csv``: ``RUN/metrics.csv``, one row per epoch of every stage."""

from __future__ import annotations

import csv
import io as _stringio
from pathlib import Path

from keras_edge import hookimpl, io
from keras_edge.run_state import history_row


class MetricsCsv:
    """Rewrites ``metrics.csv`` after every epoch (last, so other plugins' log entries are in)."""

    autouse = True

    @hookimpl(trylast=True)
    def on_epoch_end(self, ctx, logs):
        if ctx.run_dir is not None:
            io.write_text(Path(ctx.run_dir) / "metrics.csv", to_csv([*ctx.history, history_row(ctx, logs)]))


def to_csv(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = _stringio.StringIO()
    writer = csv.DictWriter(out, columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
