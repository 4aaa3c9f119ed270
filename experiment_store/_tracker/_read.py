"""Read a tracker CSV export and map its rows onto runs, before anything is written."""

from __future__ import annotations

import csv
import difflib
import hashlib
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mlsel.experiment_store._codec import parse_time
from mlsel.experiment_store._tracker._mapping import TrackerMapping
from mlsel.kernel.errors import ConfigError, StoreError, StoreFormatError
from mlsel.kernel.records import Config, DatasetProfile, RunResult

__all__ = ["ParsedExport", "dataset_fingerprint", "parse_value", "read_tracker_csv"]


@dataclass
class ParsedExport:
    path: Path
    runs: list[dict[str, Any]]
    profiles: list[DatasetProfile]
    problems: list[str]
    task: str


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


_OPTION = {
    "run id": "run-id-col",
    "dataset": "dataset-col",
    "architecture": "arch-col",
    "score": "score-col",
    "status": "status-col",
}


def _check_columns(path: Path, header: list[str], mapping: TrackerMapping) -> None:
    required = {
        "run id": mapping.run_id_col,
        "dataset": mapping.dataset_col,
        "architecture": mapping.arch_col,
        "score": mapping.score_col,
    }
    if mapping.status_col is not None:
        required["status"] = mapping.status_col
    for role, column in required.items():
        if column not in header:
            close = difflib.get_close_matches(column, header, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
            raise ConfigError(
                f"The {role} column {column!r} is not in {path.name} (it has "
                f"{len(header)} columns: {shown}).{hint} Name the right column with "
                f"--{_OPTION[role]}."
            )


def _columns(
    header: list[str], rows: list[dict[str, str]], mapping: TrackerMapping
) -> tuple[dict[str, str], list[str], list[str]]:
    """``(hyperparameter column -> Config field, extra columns, metric columns)``."""
    roles = {
        mapping.run_id_col,
        mapping.dataset_col,
        mapping.arch_col,
        mapping.score_col,
        mapping.status_col,
        mapping.wall_seconds_col,
        mapping.started_col,
        mapping.finished_col,
        mapping.pretrained_col,
        *mapping.seconds_per_epoch_cols,
        *mapping.feature_cols,
        *mapping.ignore_cols,
        *mapping.hardware_cols,
    }
    metrics = [
        c
        for c in header
        if c != mapping.score_col
        and (c in mapping.metric_cols or c.startswith(tuple(mapping.metric_prefixes)))
    ]
    known = {c: f for c, f in mapping.hyperparams.items() if c in header}
    extras = [
        c
        for c in header
        if c not in roles and c not in metrics and c not in known and not c.startswith("tags.")
    ]
    if mapping.drop_constant and len(rows) > 1:
        extras = [c for c in extras if len({row[c] for row in rows}) > 1]
    return known, extras, metrics


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


def read_tracker_csv(path: Path, mapping: TrackerMapping) -> ParsedExport:
    """Read and map a tracker CSV (no store access; errors before anything is written)."""
    path = path.expanduser().resolve()
    header, rows = _read_rows(path)
    _check_columns(path, header, mapping)
    known, extras, metrics = _columns(header, rows, mapping)
    config_types = {f.name: f.type for f in fields(Config)}
    parsed = ParsedExport(path, [], [], [], mapping.task)
    feature_values: dict[str, dict[str, Counter[float]]] = {}
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            run = _map_row(row, number, mapping, known, extras, metrics, config_types)
        except (ValueError, TypeError) as exc:
            parsed.problems.append(f"line {number}: {exc}")
            continue
        parsed.runs.append(run)
        per_dataset = feature_values.setdefault(run["dataset_name"], {})
        for column, feature in mapping.feature_cols.items():
            value = _number(row.get(column)) if column in row else None
            if value is not None:
                per_dataset.setdefault(feature, Counter())[value] += 1
    parsed.profiles.extend(_profiles(feature_values, mapping.task))
    return parsed


def _map_row(
    row: Mapping[str, str],
    number: int,
    mapping: TrackerMapping,
    known: Mapping[str, str],
    extras: list[str],
    metrics: list[str],
    config_types: Mapping[str, Any],
) -> dict[str, Any]:
    dataset, arch = row[mapping.dataset_col].strip(), row[mapping.arch_col].strip()
    if not dataset or not arch:
        raise ValueError(f"no {'dataset' if not dataset else 'architecture'} in this row")
    tracker_id = row[mapping.run_id_col].strip() or f"line{number}"
    values: dict[str, Any] = {
        "backend": mapping.backend,
        "arch": arch,
        "pretrained": mapping.pretrained,
    }
    if mapping.pretrained_col and (row.get(mapping.pretrained_col) or "").strip():
        values["pretrained"] = row[mapping.pretrained_col].strip()
    for column, name in known.items():
        value = parse_value(row[column])
        if value is not None:
            kind = str(config_types[name])
            values[name] = (
                int(float(value))
                if kind == "int"
                else (float(value) if kind == "float" else str(value))
            )
    extra = {c: v for c in extras if (v := parse_value(row[c])) is not None}
    raw_score = _number(row[mapping.score_col])
    state = (row.get(mapping.status_col) or "").strip() if mapping.status_col else ""
    finished = mapping.status_col is None or state.lower() in {
        v.lower() for v in mapping.finished_values
    }
    error = None
    if raw_score is None:
        error = f"the tracker run ({state or 'no state'}) never reported {mapping.score_col}"
    elif not finished:
        error = f"the tracker run ended as {state!r} after reporting {mapping.score_col}"
    per_epoch = [
        s
        for c in mapping.seconds_per_epoch_cols
        if c in row and (s := _number(row.get(c))) is not None
    ]
    result = RunResult(
        status="completed" if error is None else "failed",
        score=None if raw_score is None else raw_score * mapping.score_scale,
        metrics={c: v for c in metrics if (v := _maybe_number(row[c])) is not None},
        wall_seconds=_number(row.get(mapping.wall_seconds_col or "")),
        seconds_per_epoch=sum(per_epoch) if per_epoch else None,
        hardware={
            key: row[c].strip()
            for c, key in mapping.hardware_cols.items()
            if (row.get(c) or "").strip()
        },
        error=error,
    )
    return {
        "dataset_name": dataset,
        "tracker_id": tracker_id,
        "config": Config.from_dict({**values, "extra": extra}),
        "result": result,
        "started_at": parse_time(row.get(mapping.started_col or "")),
        "finished_at": parse_time(row.get(mapping.finished_col or "")),
    }
