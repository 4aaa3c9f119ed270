"""The store's tables, their forward migrations, and the check that a file is a store.

``MIGRATIONS[i]`` takes a store at schema version ``i`` to ``i + 1``; ``schema_version``
keeps one row per applied migration. Opening an older store runs the missing migrations in
one transaction; a store written by a newer mlsel is refused rather than guessed at.
Meta-features are a long table (``profile_features``), so new profilers need no migration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlsel.kernel.errors import StoreError, StoreFormatError

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "CONFIG_COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "check_version",
    "migrate",
    "sniff_store_file",
    "unreadable",
    "schema_version",
]

logger = logging.getLogger(__name__)

_DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB database file

# Config fields kept as columns of `runs` (the full config, `extra` included, is JSON).
CONFIG_COLUMNS: dict[str, str] = {
    "backend": "VARCHAR",
    "arch": "VARCHAR",
    "pretrained": "VARCHAR",
    "finetune": "VARCHAR",
    "lr": "DOUBLE",
    "weight_decay": "DOUBLE",
    "batch_size": "INTEGER",
    "epochs": "INTEGER",
    "image_size": "INTEGER",
    "augment": "VARCHAR",
    "optimizer": "VARCHAR",
    "schedule": "VARCHAR",
    "label_smoothing": "DOUBLE",
    "min_per_class": "INTEGER",
    "patience": "INTEGER",
    "seed": "INTEGER",
}


def _v1_core(con: duckdb.DuckDBPyConnection) -> None:
    """Datasets, their profiles (long features), runs and their epochs."""
    config_cols = ",\n".join(f"    {name} {kind}" for name, kind in CONFIG_COLUMNS.items())
    con.execute(
        """
        CREATE TABLE datasets (
            fingerprint VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL DEFAULT '',
            task VARCHAR,
            path VARCHAR,
            source VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE profiles (
            fingerprint VARCHAR NOT NULL,
            profiler_version VARCHAR NOT NULL,
            warnings VARCHAR NOT NULL DEFAULT '[]',
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (fingerprint, profiler_version)
        );
        CREATE TABLE profile_features (
            fingerprint VARCHAR NOT NULL,
            profiler_version VARCHAR NOT NULL,
            feature VARCHAR NOT NULL,
            value DOUBLE
        );
        CREATE TABLE epochs (
            run_id VARCHAR NOT NULL,
            epoch INTEGER NOT NULL,
            train_loss DOUBLE,
            val_loss DOUBLE,
            score DOUBLE,
            seconds DOUBLE
        );
        """
    )
    con.execute(
        f"""
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            dataset VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            config VARCHAR NOT NULL,
            config_key VARCHAR NOT NULL,
        {config_cols},
            score DOUBLE,
            metrics VARCHAR NOT NULL DEFAULT '{{}}',
            confusion VARCHAR,
            wall_seconds DOUBLE,
            seconds_per_epoch DOUBLE,
            peak_gpu_mb DOUBLE,
            peak_host_mb DOUBLE,
            hardware VARCHAR NOT NULL DEFAULT '{{}}',
            versions VARCHAR NOT NULL DEFAULT '{{}}',
            error VARCHAR,
            artifact_dir VARCHAR,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            pid INTEGER,
            host VARCHAR,
            import_key VARCHAR
        )
        """
    )


def _v2_rankers_settings(con: duckdb.DuckDBPyConnection) -> None:
    """Fitted rankers, small settings, and when each run row was last written."""
    con.execute(
        """
        CREATE TABLE rankers (
            version VARCHAR PRIMARY KEY,
            path VARCHAR NOT NULL,
            trained_at TIMESTAMP NOT NULL,
            rows INTEGER NOT NULL,
            evaluation VARCHAR NOT NULL DEFAULT '{}',
            active BOOLEAN NOT NULL DEFAULT false
        );
        CREATE TABLE settings (key VARCHAR PRIMARY KEY, value VARCHAR);
        ALTER TABLE runs ADD COLUMN recorded_at TIMESTAMP;
        UPDATE runs SET recorded_at = coalesce(finished_at, started_at, now()::TIMESTAMP);
        """
    )


Migration = Callable[["duckdb.DuckDBPyConnection"], None]
MIGRATIONS: tuple[Migration, ...] = (_v1_core, _v2_rankers_settings)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The store's schema version, or ``None`` when it has no ``schema_version`` table."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = 'schema_version'"
    ).fetchone()
    if not found or not found[0]:
        return None
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: duckdb.DuckDBPyConnection, target: int = SCHEMA_VERSION) -> int:
    """Bring the store on ``con`` up to ``target``; the caller holds the transaction.

    Returns:
        The number of migrations applied.
    """
    current = schema_version(con)
    if current is None:
        con.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMP NOT NULL, mlsel_version VARCHAR)"
        )
        current = 0
    for version in range(current + 1, target + 1):
        logger.info("migrating the experiment store to schema version %d", version)
        MIGRATIONS[version - 1](con)
        con.execute(
            "INSERT INTO schema_version VALUES (?, now()::TIMESTAMP, ?)",
            [version, _mlsel_version()],
        )
    return max(0, target - current)


_FIX = "Move it away, or choose another home with --home; mlsel did not modify it."


def sniff_store_file(path: Path) -> None:
    """Check, by reading its first bytes only, that ``path`` may be a DuckDB database.

    Raises:
        StoreFormatError: the file is empty or not a DuckDB database.
    """
    with open(path, "rb") as handle:
        head = handle.read(16)
    if len(head) < 12 or head[8:12] != _DUCKDB_MAGIC:
        kind = "an empty file" if not head else "not a DuckDB database"
        raise StoreFormatError(f"The file at the store path {path} is {kind}. {_FIX}")


def unreadable(path: Path, exc: Exception) -> StoreFormatError:
    """The error for a DuckDB file that cannot be opened."""
    return StoreFormatError(
        f"The DuckDB file at the store path {path} cannot be read ({exc}). {_FIX}"
    )


def check_version(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """The schema version of the store on ``con``, refusing foreign and newer files."""
    version = schema_version(con)
    if version is None:
        raise StoreFormatError(
            f"The DuckDB file at the store path {path} is not an mlsel experiment store "
            f"(it has no schema_version table). {_FIX}"
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"The experiment store {path} has schema version {version}, newer than this "
            f"mlsel understands ({SCHEMA_VERSION}). Upgrade mlsel to use it."
        )
    return version


def _mlsel_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlsel")
    except PackageNotFoundError:
        return "0+unknown"
