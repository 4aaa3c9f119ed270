"""Reads and writes of the store's tables on an open connection (no locking here).

:class:`~mlsel.experiment_store.store.Store` opens the connection, holds the lock and the
transaction; the importers reuse these functions inside their own transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlsel.experiment_store._codec import (
    EPOCH_COLUMNS,
    RUN_COLUMNS,
    epoch_from_row,
    record_from_row,
)
from mlsel.kernel.records import DatasetProfile, EpochRecord, RunRecord

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "dataset_filter",
    "ensure_dataset",
    "fetch_epochs",
    "fetch_records",
    "insert_rows",
    "read_profile",
    "upsert_dataset",
    "write_profile",
]

_SMALL_INSERT = 256
PROFILE_FEATURE_COLUMNS = {
    "fingerprint": "VARCHAR",
    "profiler_version": "VARCHAR",
    "feature": "VARCHAR",
    "value": "DOUBLE",
}


def insert_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Mapping[str, str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Bulk-insert ``rows`` into ``table`` through one typed Polars frame (fast for any
    count, and unlike a PyArrow table it does not make DuckDB import pandas)."""
    if not rows:
        return
    names = ", ".join(columns)
    if len(rows) <= _SMALL_INSERT:
        # Plain parameters: no Polars thread pool, which hangs in a child forked after
        # the parent used it (a forked trial process logs its runs this way).
        marks = ", ".join("?" for _ in columns)
        con.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})",
            [[r[name] for name in columns] for r in rows],
        )
        return
    import polars as pl

    kinds: dict[str, Any] = {
        "VARCHAR": pl.String,
        "DOUBLE": pl.Float64,
        "INTEGER": pl.Int32,
        "TIMESTAMP": pl.Datetime("us"),
        "BOOLEAN": pl.Boolean,
    }
    frame = pl.DataFrame(
        {name: [r[name] for r in rows] for name in columns},
        schema={name: kinds[kind] for name, kind in columns.items()},
    )
    con.register("_mlsel_new_rows", frame)
    try:
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _mlsel_new_rows")
    finally:
        con.unregister("_mlsel_new_rows")


def upsert_dataset(
    con: duckdb.DuckDBPyConnection,
    fingerprint: str,
    *,
    name: str,
    task: str | None,
    path: str | None,
    source: str,
    now: datetime,
) -> None:
    """Add a dataset, or fill in its name, task and path (its first source is kept)."""
    con.execute(
        """
        INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (fingerprint) DO UPDATE SET
            name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE datasets.name END,
            task = coalesce(excluded.task, datasets.task),
            path = coalesce(excluded.path, datasets.path)
        """,
        [fingerprint, name, task, path, source, now],
    )


def ensure_dataset(
    con: duckdb.DuckDBPyConnection,
    fingerprints: Sequence[str],
    source: str,
    now: datetime,
    *,
    known: tuple[str, str, str] | None = None,
) -> None:
    """Add a placeholder row for datasets runs refer to before their profile is saved;
    ``known`` (name, task, folder) of the one dataset fills in what the store keeps."""
    if known is not None and len(fingerprints) == 1:
        name, task, path = known
        upsert_dataset(
            con, fingerprints[0], name=name, task=task, path=path, source=source, now=now
        )
        return
    con.execute(
        """
        INSERT INTO datasets
        SELECT fp, '', NULL, NULL, ?, ? FROM (SELECT DISTINCT unnest(?::VARCHAR[]) AS fp)
        WHERE fp NOT IN (SELECT fingerprint FROM datasets)
        """,
        [source, now, sorted(set(fingerprints))],
    )


def write_profile(
    con: duckdb.DuckDBPyConnection, profile: DatasetProfile, source: str, now: datetime
) -> None:
    """Upsert the dataset and replace its profile of this profiler version."""
    upsert_dataset(
        con,
        profile.fingerprint,
        name=profile.name,
        task=profile.task,
        path=None if profile.path is None else str(profile.path),
        source=source,
        now=now,
    )
    con.execute(
        """
        INSERT INTO profiles VALUES (?, ?, ?, ?)
        ON CONFLICT (fingerprint, profiler_version) DO UPDATE SET
            warnings = excluded.warnings, created_at = excluded.created_at
        """,
        [profile.fingerprint, profile.profiler_version, json.dumps(list(profile.warnings)), now],
    )
    con.execute(
        "DELETE FROM profile_features WHERE fingerprint = ? AND profiler_version = ?",
        [profile.fingerprint, profile.profiler_version],
    )
    rows = [
        {
            "fingerprint": profile.fingerprint,
            "profiler_version": profile.profiler_version,
            "feature": str(name),
            "value": None if value is None else float(value),
        }
        for name, value in profile.features.items()
    ]
    insert_rows(con, "profile_features", PROFILE_FEATURE_COLUMNS, rows)


def read_profile(
    con: duckdb.DuckDBPyConnection, fingerprint: str, profiler_version: str | None
) -> DatasetProfile | None:
    """The profile of one dataset (the latest one when ``profiler_version`` is None)."""
    found = con.execute(
        """
        SELECT p.profiler_version, p.warnings, d.task, d.name, d.path
        FROM profiles p JOIN datasets d USING (fingerprint)
        WHERE p.fingerprint = ? AND (? IS NULL OR p.profiler_version = ?)
        ORDER BY p.created_at DESC, p.profiler_version DESC
        LIMIT 1
        """,
        [fingerprint, profiler_version, profiler_version],
    ).fetchone()
    if found is None:
        return None
    version, warnings, task, name, path = found
    features = con.execute(
        "SELECT feature, value FROM profile_features "
        "WHERE fingerprint = ? AND profiler_version = ? ORDER BY feature",
        [fingerprint, version],
    ).fetchall()
    return DatasetProfile(
        fingerprint=fingerprint,
        task=task or "",
        features={feature: (float("nan") if v is None else v) for feature, v in features},
        profiler_version=version,
        name=name,
        path=path,
        warnings=tuple(json.loads(warnings)),
    )


def dataset_filter(dataset: str | None, alias: str = "r") -> tuple[str, list[Any]]:
    """SQL condition matching a dataset by fingerprint, fingerprint prefix, or name."""
    if dataset is None:
        return "TRUE", []
    return (
        f"({alias}.dataset = ? OR {alias}.dataset IN "
        "(SELECT fingerprint FROM datasets WHERE name = ?) "
        f"OR (length(?) >= 6 AND starts_with({alias}.dataset, ?)))",
        [dataset, dataset, dataset, dataset],
    )


def fetch_epochs(
    con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]
) -> dict[str, list[EpochRecord]]:
    """Each run's curve, by run id, ordered by epoch."""
    if not run_ids:
        return {}
    names = ", ".join(EPOCH_COLUMNS)
    cursor = con.execute(
        f"SELECT {names} FROM epochs WHERE run_id IN (SELECT unnest(?::VARCHAR[])) "
        "ORDER BY run_id, epoch",
        [list(run_ids)],
    )
    curves: dict[str, list[EpochRecord]] = {}
    for values in cursor.fetchall():
        row = dict(zip(EPOCH_COLUMNS, values, strict=True))
        curves.setdefault(row["run_id"], []).append(epoch_from_row(row))
    return curves


def fetch_records(
    con: duckdb.DuckDBPyConnection,
    where: str = "TRUE",
    params: Sequence[Any] = (),
    limit: int | None = None,
) -> list[RunRecord]:
    """Runs matching ``where`` (on alias ``r``), newest first, with their curves."""
    names = ", ".join(f"r.{name}" for name in RUN_COLUMNS)
    query = (
        f"SELECT {names} FROM runs r WHERE {where} ORDER BY r.started_at DESC NULLS LAST, r.run_id"
    )
    args = list(params)
    if limit is not None:
        query += " LIMIT ?"
        args.append(limit)
    rows = [
        dict(zip(RUN_COLUMNS, values, strict=True))
        for values in con.execute(query, args).fetchall()
    ]
    curves = fetch_epochs(con, [row["run_id"] for row in rows])
    return [record_from_row(row, curves.get(row["run_id"], ())) for row in rows]
