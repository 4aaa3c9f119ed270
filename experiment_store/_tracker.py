"""Import experiment-tracker CSV exports (Weights & Biases / MLflow style, one row a run).

A :class:`TrackerMapping` says which columns are the run id, dataset, architecture, score
and status; known hyperparameter names become :class:`Config` fields, other hyperparameter
columns go to ``Config.extra``, result columns to ``metrics``, and dataset columns such as
``num_classes`` to an ``imported`` :class:`DatasetProfile`. The defaults fit a W&B export
of timm fine-tuning runs (Quick-Tune's meta-data). Rows that never reported a score are
``failed``, never zero; re-importing the same file adds nothing (each run's import key is
the file name plus the tracker's run id).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.experiment_store._codec import RUN_COLUMNS, parse_time, run_row
from mlsel.experiment_store._exchange import ImportReport
from mlsel.experiment_store._tables import insert_rows, write_profile
from mlsel.experiment_store.errors import ConfigError, StoreError, StoreFormatError
from mlsel.experiment_store.records import Config, DatasetProfile, RunResult

if TYPE_CHECKING:
    import duckdb

__all__ = ["TrackerMapping", "read_tracker_csv", "write_tracker_runs"]

logger = logging.getLogger(__name__)

_KNOWN_HYPERPARAMS = {
    "lr": "lr",
    "batch_size": "batch_size",
    "weight_decay": "weight_decay",
    "opt": "optimizer",
    "sched": "schedule",
    "smoothing": "label_smoothing",
    "epochs": "epochs",
}
# Tracker bookkeeping, not hyperparameters (W&B and MLflow run-table columns; timm's
# `experiment` is the run name again).
_TRACKER_COLUMNS = (
    "Name",
    "Runtime",
    "Hostname",
    "Notes",
    "GPU Type",
    "GPU Count",
    "Tags",
    "ID",
    "State",
    "User",
    "Group",
    "Job Type",
    "Created",
    "Updated",
    "End Time",
    "Sweep",
    "Description",
    "Commit",
    "GitHub",
    "experiment",
    "Run ID",
    "Status",
    "Start Time",
    "Duration",
    "Source Type",
    "Source Name",
    "Source Version",
    "Lifecycle Stage",
    "run_id",
)


@dataclass(frozen=True)
class TrackerMapping:
    """Which columns of a tracker CSV mean what. Defaults fit a W&B export of timm runs.

    Attributes:
        run_id_col / dataset_col / arch_col / score_col: required columns.
        score_scale: factor turning the score column into mlsel's 0..1 score (0.01 for %).
        status_col: the run state column (None: every row with a score is finished);
            ``finished_values`` are its values meaning the run finished (any case).
        seconds_per_epoch_cols: columns summed into seconds per epoch (when present).
        wall_seconds_col / started_col / finished_col: run timing (when present).
        feature_cols: dataset column -> meta-feature name of the ``imported`` profile.
        hyperparams: column -> Config field; other hyperparameter columns go to ``extra``.
        metric_cols / metric_prefixes: columns kept as metrics, not hyperparameters.
        ignore_cols: tracker bookkeeping columns to leave out.
        hardware_cols: column -> hardware key.
        backend / pretrained: the Config backend and weights of every imported run
            (``pretrained_col`` overrides the latter per row when set).
        task: the task of the imported datasets.
        drop_constant: leave out of ``extra`` the columns with one value in the whole file.
    """

    run_id_col: str = "ID"
    dataset_col: str = "dataset"
    arch_col: str = "model"
    score_col: str = "eval_top1"
    score_scale: float = 0.01
    status_col: str | None = "State"
    finished_values: tuple[str, ...] = ("finished",)
    seconds_per_epoch_cols: tuple[str, ...] = ("train_time", "eval_time")
    wall_seconds_col: str | None = "Runtime"
    started_col: str | None = "Created"
    finished_col: str | None = "End Time"
    feature_cols: Mapping[str, str] = field(default_factory=lambda: {"num_classes": "num_classes"})
    hyperparams: Mapping[str, str] = field(default_factory=lambda: dict(_KNOWN_HYPERPARAMS))
    metric_cols: tuple[str, ...] = ("epoch",)
    metric_prefixes: tuple[str, ...] = ("eval_", "train_", "val_", "test_", "metrics.")
    ignore_cols: tuple[str, ...] = _TRACKER_COLUMNS
    hardware_cols: Mapping[str, str] = field(
        default_factory=lambda: {"Hostname": "host", "GPU Type": "gpu", "GPU Count": "gpu_count"}
    )
    backend: str = "external"
    pretrained: str | None = "imagenet"
    pretrained_col: str | None = None
    task: str = "classify"
    drop_constant: bool = True


@dataclass
class _Parsed:
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


def read_tracker_csv(path: Path, mapping: TrackerMapping) -> _Parsed:
    """Read and map a tracker CSV (no store access; errors before anything is written)."""
    path = path.expanduser().resolve()
    header, rows = _read_rows(path)
    _check_columns(path, header, mapping)
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
    config_types = {f.name: f.type for f in fields(Config)}
    parsed = _Parsed(path, [], [], [], mapping.task)
    feature_values: dict[str, dict[str, Counter]] = {}
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
    for name, values in feature_values.items():
        parsed.profiles.append(
            DatasetProfile(
                fingerprint=dataset_fingerprint(name),
                task=mapping.task,
                name=name,
                features={f: counts.most_common(1)[0][0] for f, counts in values.items()},
                profiler_version="imported",
            )
        )
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
    per_epoch = [_number(row.get(c)) for c in mapping.seconds_per_epoch_cols if c in row]
    per_epoch = [s for s in per_epoch if s is not None]
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


def write_tracker_runs(
    con: duckdb.DuckDBPyConnection, parsed: _Parsed, now: datetime
) -> ImportReport:
    """Add the parsed runs, datasets and profiles that the store on ``con`` lacks."""
    datasets = {fp for (fp,) in con.execute("SELECT fingerprint FROM datasets").fetchall()}
    profiles = {
        fp
        for (fp,) in con.execute(
            "SELECT fingerprint FROM profiles WHERE profiler_version = 'imported'"
        ).fetchall()
    }
    for profile in parsed.profiles:
        write_profile(con, profile, "imported", now)
    keys = [f"tracker-csv:{parsed.path.name}:{run['tracker_id']}" for run in parsed.runs]
    known = {
        k
        for (k,) in con.execute(
            "SELECT import_key FROM runs WHERE import_key IN (SELECT unnest(?::VARCHAR[]))", [keys]
        ).fetchall()
    }
    rows, seen, new_datasets = [], set(known), set()
    for run, key in zip(parsed.runs, keys, strict=True):
        if key in seen:
            continue
        seen.add(key)
        fingerprint = dataset_fingerprint(run["dataset_name"])
        if fingerprint not in datasets and fingerprint not in new_datasets:
            new_datasets.add(fingerprint)
            con.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, NULL, 'imported', ?) ON CONFLICT DO NOTHING",
                [fingerprint, run["dataset_name"], parsed.task, now],
            )
        rows.append(
            run_row(
                hashlib.sha1(key.encode()).hexdigest()[:16],
                fingerprint,
                "imported",
                run["config"],
                run["result"],
                started_at=run["started_at"],
                finished_at=run["finished_at"],
                import_key=key,
                recorded_at=now,
            )
        )
    insert_rows(con, "runs", RUN_COLUMNS, rows)
    new_fps = {dataset_fingerprint(run["dataset_name"]) for run in parsed.runs} - datasets
    return ImportReport(
        path=str(parsed.path),
        format="tracker-csv",
        runs_added=len(rows),
        runs_skipped=len(parsed.runs) - len(rows),
        rows_failed=len(parsed.problems),
        datasets_added=len(new_fps),
        profiles_added=len({p.fingerprint for p in parsed.profiles} - profiles),
        by_status=dict(sorted(Counter(r["status"] for r in rows).items())),
        problems=tuple(parsed.problems[:50]),
    )
