"""The opt-in prediction log: what a model predicted for which image, and when.

``mlsel predict --log`` writes its rows directly; a service writes spool files that mlsel
brings into the store in batches (see :mod:`mlsel.metalearn.prediction_log`). Each row has
its own id, so bringing the same spool file in twice keeps one row per prediction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlsel.experiment_store._codec import utcnow
from mlsel.experiment_store._frames import sql_frame
from mlsel.kernel.errors import StoreError

if TYPE_CHECKING:
    import duckdb
    import polars as pl

__all__ = ["PREDICTION_SOURCES", "PredictionRow", "insert_predictions", "predictions_frame"]

PREDICTION_SOURCES = ("predict", "serve")


@dataclass(frozen=True)
class PredictionRow:
    """One logged prediction (``probabilities`` in ``classes`` order, when kept)."""

    prediction_id: str
    model: str
    image_hash: str
    label: str
    confidence: float
    top_k: tuple[tuple[str, float], ...]
    probabilities: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None
    model_version: int | None = None
    run_id: str | None = None
    path: str | None = None
    blob: str | None = None
    source: str = "predict"
    predicted_at: datetime | None = None


def _row(row: PredictionRow, now: datetime) -> list[Any]:
    if row.source not in PREDICTION_SOURCES:
        raise StoreError(
            f"A prediction's source must be one of {', '.join(PREDICTION_SOURCES)}; got "
            f"{row.source!r}."
        )
    if row.probabilities is not None and row.classes is not None:
        if len(row.probabilities) != len(row.classes):
            raise StoreError(
                f"Prediction {row.prediction_id} has {len(row.probabilities)} probabilities "
                f"for {len(row.classes)} classes."
            )
    return [
        row.prediction_id,
        row.model,
        row.model_version,
        row.run_id,
        row.image_hash,
        row.path,
        row.blob,
        row.label,
        float(row.confidence),
        json.dumps([[label, float(p)] for label, p in row.top_k]),
        None if row.probabilities is None else [float(p) for p in row.probabilities],
        None if row.classes is None else list(row.classes),
        row.source,
        row.predicted_at or now,
    ]


def insert_predictions(con: duckdb.DuckDBPyConnection, rows: Sequence[PredictionRow]) -> int:
    """Insert ``rows``, keeping one row per prediction id; returns the rows that were new."""
    if not rows:
        return 0
    now = utcnow()
    values = [_row(row, now) for row in rows]
    before = con.execute("SELECT count(*) FROM predictions").fetchone()
    con.executemany(
        "INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (prediction_id) DO NOTHING",
        values,
    )
    after = con.execute("SELECT count(*) FROM predictions").fetchone()
    return int(after[0] if after else 0) - int(before[0] if before else 0)


def predictions_frame(
    con: duckdb.DuckDBPyConnection, model: str | None, model_version: int | None
) -> pl.DataFrame:
    """The logged predictions (of ``model``, of one version), oldest first."""
    clauses: list[str] = []
    params: list[Any] = []
    if model is not None:
        clauses.append("model = ?")
        params.append(model)
    if model_version is not None:
        clauses.append("model_version = ?")
        params.append(model_version)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return sql_frame(
        con, f"SELECT * FROM predictions {where} ORDER BY predicted_at, prediction_id", params
    )
