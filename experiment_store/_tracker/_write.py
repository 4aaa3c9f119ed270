"""Write the runs of a parsed tracker export that the store lacks."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

from mlsel.experiment_store._codec import RUN_COLUMNS, run_row
from mlsel.experiment_store._exchange import ImportReport
from mlsel.experiment_store._tables import insert_rows, write_profile
from mlsel.experiment_store._tracker._read import ParsedExport, dataset_fingerprint

if TYPE_CHECKING:
    import duckdb

__all__ = ["write_tracker_runs"]


def write_tracker_runs(
    con: duckdb.DuckDBPyConnection, parsed: ParsedExport, now: datetime
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
