"""Read a tracker CSV export and map its rows onto runs, before anything is written.

Missing is missing: an empty cell, or a column this export lacks, is ``None`` (never 0),
and a row that never reported its score is a failed run without a score.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mlsel.experiment_store._codec import parse_time
from mlsel.experiment_store._tracker._formats import (
    CSV_FORMATS,
    ExportColumns,
    detect_csv_format,
    logical_name,
    resolve_columns,
)
from mlsel.experiment_store._tracker._identity import row_keys
from mlsel.experiment_store._tracker._mapping import TrackerMapping
from mlsel.kernel.errors import ConfigError, StoreError, StoreFormatError
from mlsel.kernel.records import Config, DatasetProfile, RunResult

__all__ = ["ParsedExport", "dataset_fingerprint", "parse_value", "read_tracker_csv"]


@dataclass
class ParsedExport:
    """One tracker export, mapped: its runs (with their keys), profiles and skipped rows.

    Attributes:
        skipped: reason -> rows left out without being an error (still running,
            repeated in this file); ``problems``: one line per row that could not be read.
    """

    path: Path
    columns: ExportColumns
    runs: list[dict[str, Any]]
    profiles: list[DatasetProfile]
    problems: list[str]
    task: str
    skipped: Counter[str] = field(default_factory=Counter)


def parse_value(text: str) -> Any:
    """A CSV cell as bool, int, float or str (``None`` when empty)."""
    text = text.strip()
    if text == "":
        return None
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _number(text: str | None) -> float | None:
    value = parse_value(text or "")
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float):
        raise ValueError(f"not a number: {text!r}")
    return None if math.isnan(value) else float(value)


def _maybe_number(text: str | None) -> float | None:
    try:
        return _number(text)
    except ValueError:  # e.g. timm's `eval_metric` column holds the metric's name
        return None


def dataset_fingerprint(name: str) -> str:
    """The stable fingerprint given to a dataset known only by its tracker name."""
    return hashlib.sha1(f"tracker-dataset:{name}".encode()).hexdigest()[:16]


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise StoreError(f"No file {path} to import. Check the path.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise StoreFormatError(
            f"{path} is not a text CSV ({exc}). For an mlsel export use --format mlsel."
        ) from exc
    return header, rows


def _profiles(
    values: Mapping[str, Mapping[str, Counter[float]]], task: str
) -> list[DatasetProfile]:
    """One ``imported`` profile a dataset: each feature's most common value in its rows."""
    return [
        DatasetProfile(
            fingerprint=dataset_fingerprint(name),
            task=task,
            name=name,
            features={f: counts.most_common(1)[0][0] for f, counts in features.items()},
            profiler_version="imported",
        )
        for name, features in values.items()
    ]


_DURATION = re.compile(r"^\s*([0-9.]+)\s*(ms|s|sec|min|m|h|hr|d)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "sec": 1,
    "min": 60,
    "m": 60,
    "h": 3600,
    "hr": 3600,
    "d": 86400,
}


def _seconds(text: str | None) -> float | None:
    """Seconds from a number or an MLflow UI duration (``850ms``, ``12.5s``, ``3.1min``)."""
    number = _maybe_number(text)
    if number is not None:
        return number
    found = _DURATION.match(text or "")
    return float(found[1]) * _UNIT_SECONDS[found[2].lower()] if found else None


def _cell(row: Mapping[str, str | None], column: str | None) -> str:
    """The stripped cell of ``column`` ("" when the column or the cell is missing)."""
    return (row.get(column) or "").strip() if column else ""


def read_tracker_csv(
    path: Path, mapping: TrackerMapping | None = None, fmt: str = "auto"
) -> ParsedExport:
    """Read and map a tracker CSV (no store access; errors before anything is written).

    Args:
        path: the CSV file.
        mapping: column names that override what is found from the header.
        fmt: ``auto`` (from the header) or one of ``CSV_FORMATS``.
    """
    mapping = mapping or TrackerMapping()
    path = path.expanduser().resolve()
    header, rows = _read_rows(path)
    if fmt == "auto":
        fmt = detect_csv_format(header)
    elif fmt not in CSV_FORMATS:
        raise ConfigError(f"Unknown tracker format {fmt!r}; known: {', '.join(CSV_FORMATS)}.")
    columns = resolve_columns(path, header, rows, mapping, fmt)
    config_types = {f.name: f.type for f in fields(Config)}
    parsed = ParsedExport(path, columns, [], [], [], mapping.task)
    running = {v.lower() for v in mapping.running_values}
    seen: set[str] = set()
    feature_values: dict[str, dict[str, Counter[float]]] = {}
    for number, (row, keys) in enumerate(
        zip(rows, row_keys(rows, columns, path.name), strict=True), start=2
    ):
        if _cell(row, columns.roles.get("status")).lower() in running:
            parsed.skipped["still running (a later export imports it)"] += 1
            continue
        if keys.primary in seen:
            parsed.skipped[f"repeated in this file (same {columns.identity})"] += 1
            continue
        try:
            run = _map_row(row, mapping, columns, config_types)
        except (ValueError, TypeError) as exc:
            parsed.problems.append(f"line {number}: {exc}")
            continue
        seen.add(keys.primary)
        run["keys"] = keys
        parsed.runs.append(run)
        per_dataset = feature_values.setdefault(run["dataset_name"], {})
        for column, feature in columns.features.items():
            value = _maybe_number(row.get(column))
            if value is not None:
                per_dataset.setdefault(feature, Counter())[value] += 1
    parsed.profiles.extend(_profiles(feature_values, mapping.task))
    return parsed


def _map_row(
    row: Mapping[str, str],
    mapping: TrackerMapping,
    columns: ExportColumns,
    config_types: Mapping[str, Any],
) -> dict[str, Any]:
    roles = columns.roles
    dataset, arch = _cell(row, roles["dataset"]), _cell(row, roles["arch"])
    if not dataset or not arch:
        raise ValueError(f"no {'dataset' if not dataset else 'architecture'} in this row")
    values: dict[str, Any] = {
        "backend": mapping.backend,
        "arch": arch,
        "pretrained": mapping.pretrained,
    }
    if _cell(row, mapping.pretrained_col):
        values["pretrained"] = _cell(row, mapping.pretrained_col)
    for column, name in columns.hyperparams.items():
        value = parse_value(row.get(column) or "")
        if value is not None:
            kind = str(config_types[name])
            values[name] = (
                int(float(value))
                if kind == "int"
                else (float(value) if kind == "float" else str(value))
            )
    extra = {
        logical_name(c): v
        for c in columns.extras
        if (v := parse_value(row.get(c) or "")) is not None
    }
    score_col = roles["score"] or ""
    raw_score = _number(row.get(score_col))
    state = _cell(row, roles.get("status"))
    finished = roles.get("status") is None or state.lower() in {
        v.lower() for v in mapping.finished_values
    }
    error = None
    if raw_score is None:
        error = f"the tracker run ({state or 'no state'}) never reported {score_col}"
    elif not finished:
        error = f"the tracker run ended as {state!r} after reporting {score_col}"
    per_epoch = [
        s
        for column in row
        if column is not None
        and logical_name(column) in mapping.seconds_per_epoch_cols
        and (s := _maybe_number(row.get(column))) is not None
    ]
    started = parse_time(row.get(roles.get("started") or ""))
    ended = parse_time(row.get(roles.get("finished") or ""))
    wall = _seconds(row.get(roles.get("wall_seconds") or ""))
    if wall is None and started is not None and ended is not None and ended >= started:
        wall = (ended - started).total_seconds()
    result = RunResult(
        status="completed" if error is None else "failed",
        score=None if raw_score is None else raw_score * columns.score_scale,
        metrics={
            logical_name(c): v
            for c in columns.metrics
            if (v := _maybe_number(row.get(c))) is not None
        },
        wall_seconds=wall,
        seconds_per_epoch=sum(per_epoch) if per_epoch else None,
        hardware={key: _cell(row, c) for c, key in mapping.hardware_cols.items() if _cell(row, c)},
        error=error,
    )
    return {
        "dataset_name": dataset,
        "config": Config.from_dict({**values, "extra": extra}),
        "given": frozenset(values),  # the Config fields this row sets; the rest are unknown
        "result": result,
        "started_at": started,
        "finished_at": ended,
    }
