"""Write the runs of a parsed tracker export that the store lacks (or count them: dry run)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlsel.experiment_store._codec import RUN_COLUMNS, run_row
from mlsel.experiment_store._exchange import ImportReport
from mlsel.experiment_store._schema import CONFIG_COLUMNS
from mlsel.experiment_store._tables import insert_rows, read_profile, write_profile
from mlsel.experiment_store._tracker._identity import known_runs, record_keys
from mlsel.experiment_store._tracker._read import ParsedExport, dataset_fingerprint
from mlsel.kernel.records import DatasetProfile

if TYPE_CHECKING:
    import duckdb

__all__ = ["write_tracker_runs"]


def _merged(con: duckdb.DuckDBPyConnection, profile: DatasetProfile) -> DatasetProfile:
    """``profile`` over the dataset's earlier imported one: a feature this export lacks
    keeps the value an earlier export gave it."""
    before = read_profile(con, profile.fingerprint, "imported")
    if before is None:
        return profile
    return DatasetProfile(
        fingerprint=profile.fingerprint,
        task=profile.task,
        features={**before.features, **profile.features},
        profiler_version="imported",
        name=profile.name,
    )


def _unknown_missing(row: dict[str, Any], given: Collection[str]) -> dict[str, Any]:
    """``row`` with the Config fields the export did not give NULL (and left out of its
    config JSON), so that the ranker sees them as missing, not as Config's defaults."""
    unknown = [name for name in CONFIG_COLUMNS if name not in given]
    config = json.loads(row["config"])
    for name in unknown:
        row[name] = None
        config.pop(name, None)
    row["config"] = json.dumps(config, sort_keys=True, default=str)
    return row


def write_tracker_runs(
    con: duckdb.DuckDBPyConnection, parsed: ParsedExport, now: datetime, *, dry_run: bool = False
) -> ImportReport:
    """Add the parsed runs, datasets and profiles that the store on ``con`` lacks.

    With ``dry_run`` nothing is written: the report says what an import would add.
    """
    datasets = {fp for (fp,) in con.execute("SELECT fingerprint FROM datasets").fetchall()}
    profiles = {
        fp
        for (fp,) in con.execute(
            "SELECT fingerprint FROM profiles WHERE profiler_version = 'imported'"
        ).fetchall()
    }
    matches = known_runs(con, [run["keys"] for run in parsed.runs])
    ids = [hashlib.sha1(run["keys"].primary.encode()).hexdigest()[:16] for run in parsed.runs]
    taken = {
        r
        for (r,) in con.execute(
            "SELECT run_id FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
        ).fetchall()
    }
    rows, keys, new_datasets = [], [], set()
    for run, match, run_id in zip(parsed.runs, matches, ids, strict=True):
        if match is not None or run_id in taken:
            keys.append((match or run_id, run["keys"]))  # an earlier version's run learns them
            continue
        taken.add(run_id)
        keys.append((run_id, run["keys"]))
        fingerprint = dataset_fingerprint(run["dataset_name"])
        if fingerprint not in datasets and fingerprint not in new_datasets:
            new_datasets.add(fingerprint)
            if not dry_run:
                con.execute(
                    "INSERT INTO datasets VALUES (?, ?, ?, NULL, 'imported', ?) "
                    "ON CONFLICT DO NOTHING",
                    [fingerprint, run["dataset_name"], parsed.task, now],
                )
        row = run_row(
            run_id,
            fingerprint,
            "imported",
            run["config"],
            run["result"],
            started_at=run["started_at"],
            finished_at=run["finished_at"],
            import_key=run["keys"].primary,
            recorded_at=now,
        )
        rows.append(_unknown_missing(row, run["given"]))
    if not dry_run:
        for profile in parsed.profiles:
            write_profile(con, _merged(con, profile), "imported", now)
        insert_rows(con, "runs", RUN_COLUMNS, rows)
        record_keys(con, keys)
    new_fps = {dataset_fingerprint(run["dataset_name"]) for run in parsed.runs} - datasets
    skipped = dict(parsed.skipped)
    if parsed.problems:
        skipped["could not be read"] = len(parsed.problems)
    return ImportReport(
        path=str(parsed.path),
        format=parsed.columns.format,
        runs_added=len(rows),
        runs_skipped=len(parsed.runs) - len(rows),
        rows_failed=len(parsed.problems),
        datasets_added=len(new_fps),
        profiles_added=len({p.fingerprint for p in parsed.profiles} - profiles),
        by_status=dict(sorted(Counter(r["status"] for r in rows).items())),
        problems=tuple(parsed.problems[:50]),
        identity=parsed.columns.identity,
        mapping=parsed.columns.mapping(),
        rows_left_out=skipped,
        dry_run=dry_run,
    )
