"""Typed records to table rows and back: the only place that knows both shapes.

Rows are plain dicts keyed by column name; JSON columns hold the mappings (config, metrics,
hardware, versions, confusion). Timestamps are naive UTC ``datetime`` in the tables and
ISO-8601 strings (``2025-01-31T12:00:00Z``) in the records.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any

from mlsel.experiment_store._schema import CONFIG_COLUMNS
from mlsel.kernel.records import Config, EpochRecord, RunRecord, RunResult

__all__ = [
    "EPOCH_COLUMNS",
    "RUN_COLUMNS",
    "config_json",
    "epoch_from_row",
    "epoch_rows",
    "iso",
    "parse_time",
    "record_from_row",
    "result_columns",
    "run_row",
    "utcnow",
]

_CONFIG_FIELDS = tuple(f.name for f in fields(Config) if f.name != "extra")
_INT_FIELDS = {name for name, kind in CONFIG_COLUMNS.items() if kind == "INTEGER"}
_FLOAT_FIELDS = {name for name, kind in CONFIG_COLUMNS.items() if kind == "DOUBLE"}

# Column name -> DuckDB type, in insert order (the v2 `runs` table).
RUN_COLUMNS: dict[str, str] = {
    "run_id": "VARCHAR",
    "dataset": "VARCHAR",
    "source": "VARCHAR",
    "status": "VARCHAR",
    "config": "VARCHAR",
    "config_key": "VARCHAR",
    **CONFIG_COLUMNS,
    "score": "DOUBLE",
    "metrics": "VARCHAR",
    "confusion": "VARCHAR",
    "wall_seconds": "DOUBLE",
    "seconds_per_epoch": "DOUBLE",
    "peak_gpu_mb": "DOUBLE",
    "peak_host_mb": "DOUBLE",
    "hardware": "VARCHAR",
    "versions": "VARCHAR",
    "error": "VARCHAR",
    "artifact_dir": "VARCHAR",
    "started_at": "TIMESTAMP",
    "finished_at": "TIMESTAMP",
    "pid": "INTEGER",
    "host": "VARCHAR",
    "import_key": "VARCHAR",
    "recorded_at": "TIMESTAMP",
}
EPOCH_COLUMNS: dict[str, str] = {
    "run_id": "VARCHAR",
    "epoch": "INTEGER",
    "train_loss": "DOUBLE",
    "val_loss": "DOUBLE",
    "score": "DOUBLE",
    "seconds": "DOUBLE",
}


def utcnow() -> datetime:
    """Now, as the naive UTC datetime the tables hold."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    """A table timestamp as the ISO-8601 UTC text records carry."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """ISO-8601 text (any offset, ``Z`` allowed) as naive UTC; ``None`` if unparseable."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


# Reused encoders: `json.dumps(..., default=str)` builds a new encoder on every call.
_ENCODE = json.JSONEncoder(default=str).encode
_ENCODE_SORTED = json.JSONEncoder(sort_keys=True, default=str).encode


def _dump(value: Mapping[str, Any]) -> str:
    if not value:
        return "{}"
    return _ENCODE(value if type(value) is dict else dict(value))


def config_json(config: Config) -> tuple[str, str]:
    """The canonical JSON of ``config`` and its key (equal to :meth:`Config.key`)."""
    data: dict[str, Any] = {name: getattr(config, name) for name in _CONFIG_FIELDS}
    data["extra"] = dict(config.extra)
    canon = _ENCODE_SORTED(data)
    return canon, hashlib.sha1(canon.encode()).hexdigest()[:16]


def run_row(
    run_id: str,
    dataset: str,
    source: str,
    config: Config,
    result: RunResult,
    **meta: Any,
) -> dict[str, Any]:
    """The ``runs`` row of one run; ``meta`` sets started_at, pid, host, import_key, ..."""
    canon, key = config_json(config)
    row: dict[str, Any] = {"run_id": run_id, "dataset": dataset, "source": source}
    row["status"] = result.status
    row["config"] = canon
    row["config_key"] = key
    for name in CONFIG_COLUMNS:
        value = getattr(config, name)
        if name in _INT_FIELDS:
            value = _int(value)
        elif name in _FLOAT_FIELDS:
            value = _float(value)
        row[name] = value
    row.update(result_columns(result))
    for name in ("started_at", "finished_at", "pid", "host", "import_key", "recorded_at"):
        row[name] = meta.get(name)
    return row


def result_columns(result: RunResult) -> dict[str, Any]:
    """The columns of ``runs`` that a :class:`RunResult` sets."""
    score = _float(result.score)
    return {
        "status": result.status,
        "score": None if score is not None and math.isnan(score) else score,
        "metrics": _dump({k: _float(v) for k, v in result.metrics.items()}),
        "confusion": None if result.confusion is None else _ENCODE(result.confusion),
        "wall_seconds": _float(result.wall_seconds),
        "seconds_per_epoch": _float(result.seconds_per_epoch),
        "peak_gpu_mb": _float(result.peak_gpu_mb),
        "peak_host_mb": _float(result.peak_host_mb),
        "hardware": _dump(result.hardware),
        "versions": _dump(result.versions),
        "error": result.error,
        "artifact_dir": None if result.artifact_dir is None else str(result.artifact_dir),
    }


def epoch_rows(run_id: str, curve: Sequence[EpochRecord]) -> list[dict[str, Any]]:
    """The ``epochs`` rows of a curve."""
    return [
        {
            "run_id": run_id,
            "epoch": int(e.epoch),
            "train_loss": _float(e.train_loss),
            "val_loss": _float(e.val_loss),
            "score": _float(e.score),
            "seconds": _float(e.seconds),
        }
        for e in curve
    ]


def epoch_from_row(row: Mapping[str, Any]) -> EpochRecord:
    """An :class:`EpochRecord` from an ``epochs`` row."""
    return EpochRecord(
        epoch=row["epoch"],
        train_loss=row["train_loss"],
        val_loss=row["val_loss"],
        score=row["score"],
        seconds=row["seconds"],
    )


def record_from_row(row: Mapping[str, Any], curve: Sequence[EpochRecord]) -> RunRecord:
    """A :class:`RunRecord` from a ``runs`` row and its epochs."""
    confusion = row["confusion"]
    result = RunResult(
        status=row["status"],
        score=row["score"],
        metrics=json.loads(row["metrics"]),
        confusion=None if confusion is None else tuple(map(tuple, json.loads(confusion))),
        curve=tuple(curve),
        wall_seconds=row["wall_seconds"],
        seconds_per_epoch=row["seconds_per_epoch"],
        peak_gpu_mb=row["peak_gpu_mb"],
        peak_host_mb=row["peak_host_mb"],
        hardware=json.loads(row["hardware"]),
        versions=json.loads(row["versions"]),
        error=row["error"],
        artifact_dir=row["artifact_dir"],
    )
    return RunRecord(
        run_id=row["run_id"],
        dataset=row["dataset"],
        source=row["source"],
        config=Config.from_dict(json.loads(row["config"])),
        result=result,
        started_at=iso(row["started_at"]),
        finished_at=iso(row["finished_at"]),
        import_key=row["import_key"],
    )
