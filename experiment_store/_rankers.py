"""Fitted rankers known to the store (the files live under ``$MLSEL_HOME/rankers/``).

At most one ranker is active: the one ``suggest`` uses. A refit saves a new version and
activates it only when its evaluation is not worse than the active one's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlsel.experiment_store._codec import iso
from mlsel.kernel.catalogue import FINISHED_STATUSES
from mlsel.kernel.errors import StoreError

if TYPE_CHECKING:
    import duckdb

__all__ = ["RankerEntry", "activate", "count_runs_since_active", "list_entries", "save"]


@dataclass(frozen=True)
class RankerEntry:
    """One fitted ranker: its version, file, when it was trained on how many rows,
    its evaluation (metric name -> value, free-form) and whether it is the active one."""

    version: str
    path: str
    trained_at: str
    rows: int
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    active: bool = False


def save(
    con: duckdb.DuckDBPyConnection,
    version: str,
    path: str,
    rows: int,
    evaluation: Mapping[str, Any],
    active: bool,
    now: datetime,
) -> None:
    """Insert or replace a ranker; when ``active``, it becomes the only active one."""
    if active:
        con.execute("UPDATE rankers SET active = false WHERE active AND version <> ?", [version])
    con.execute(
        """
        INSERT INTO rankers VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (version) DO UPDATE SET path = excluded.path,
            trained_at = excluded.trained_at, rows = excluded.rows,
            evaluation = excluded.evaluation, active = excluded.active
        """,
        [version, path, now, int(rows), json.dumps(dict(evaluation), default=str), active],
    )


def list_entries(con: duckdb.DuckDBPyConnection, active_only: bool = False) -> list[RankerEntry]:
    """Rankers, newest first."""
    where = "WHERE active" if active_only else ""
    found = con.execute(
        "SELECT version, path, trained_at, rows, evaluation, active FROM rankers "
        f"{where} ORDER BY trained_at DESC, version DESC"
    ).fetchall()
    return [
        RankerEntry(
            version=version,
            path=path,
            trained_at=iso(trained_at) or "",
            rows=rows,
            evaluation=json.loads(evaluation),
            active=active,
        )
        for version, path, trained_at, rows, evaluation, active in found
    ]


def activate(con: duckdb.DuckDBPyConnection, version: str) -> None:
    """Make ``version`` the only active ranker."""
    known = con.execute("SELECT count(*) FROM rankers WHERE version = ?", [version]).fetchone()
    if not known or not known[0]:
        versions = [entry.version for entry in list_entries(con)]
        raise StoreError(
            f"No ranker version {version!r} in the store (known: {', '.join(versions) or 'none'})."
            " Fit one with `mlsel refit` or pick a listed version."
        )
    con.execute("UPDATE rankers SET active = (version = ?)", [version])


def count_runs_since_active(con: duckdb.DuckDBPyConnection) -> int:
    """Finished runs recorded after the active ranker was trained (all when none is)."""
    marks = ", ".join("?" for _ in FINISHED_STATUSES)
    found = con.execute(
        f"""
        SELECT count(*) FROM runs
        WHERE status IN ({marks})
          AND recorded_at > coalesce(
              (SELECT max(trained_at) FROM rankers WHERE active), TIMESTAMP '1970-01-01')
        """,
        list(FINISHED_STATUSES),
    ).fetchone()
    return int(found[0]) if found else 0
