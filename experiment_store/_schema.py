"""The store's tables, their forward migrations, and the check that a file is a store.

``MIGRATIONS[i]`` takes a store at schema version ``i`` to ``i + 1``; ``schema_version``
keeps one row per applied migration. Opening an older store runs the missing migrations in
one transaction; a store written by a newer mlsel is refused rather than guessed at.
Meta-features are a long table (``profile_features``), so new profilers need no migration.
Before DuckDB sees a file, its headers are read: a foreign file or one cut short (a copy
that stopped early) is refused by name; a store whose tables or columns were dropped is
refused when it is opened, before any work could start that it cannot record.
"""

from __future__ import annotations

import functools
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlsel.experiment_store._faults import first_line
from mlsel.kernel.errors import StoreError, StoreFormatError

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "CONFIG_COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "check_tables",
    "check_version",
    "check_whole",
    "migrate",
    "sniff_store_file",
    "truncated",
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


def _v3_run_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Every identity of an imported run (tracker id, run name, row hash), file-independent.

    Runs imported before carry ``tracker-csv:<file name>:<tracker id>`` keys; they are kept
    as they are (a re-import of the same file name still finds them), and their tracker id
    is also recorded as ``tracker-legacy-id:<id>``, so that the same export under another
    name, or a slice of it, finds them too. Imported profiles take the profilers' name for
    the class count (``n_classes``, was ``num_classes``).
    """
    con.execute(
        """
        CREATE TABLE run_keys (
            key VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, kind VARCHAR NOT NULL
        );
        INSERT INTO run_keys SELECT DISTINCT ON (import_key) import_key, run_id, 'legacy'
            FROM runs WHERE import_key IS NOT NULL ORDER BY import_key, run_id;
        INSERT INTO run_keys
            SELECT DISTINCT ON (key) key, run_id, 'legacy' FROM (
                SELECT 'tracker-legacy-id:'
                    || regexp_extract(import_key, '^tracker-csv:.*:([^:]+)$', 1) AS key, run_id
                FROM runs WHERE import_key LIKE 'tracker-csv:%')
            WHERE key <> 'tracker-legacy-id:'
              AND NOT regexp_matches(key, '^tracker-legacy-id:line[0-9]+$')
            ORDER BY key, run_id
            ON CONFLICT DO NOTHING;
        UPDATE profile_features SET feature = 'n_classes'
            WHERE profiler_version = 'imported' AND feature = 'num_classes';
        """
    )


def _v4_registry(con: duckdb.DuckDBPyConnection) -> None:
    """The model registry (named versions, aliases and their history), the dataset versions
    made from labelled feedback, and the opt-in log of what served models predicted."""
    con.execute(
        """
        CREATE TABLE models (
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            run_id VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            dataset_version VARCHAR,
            parent INTEGER,
            promoted_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            evaluation VARCHAR NOT NULL DEFAULT '{}',
            PRIMARY KEY (name, version)
        );
        CREATE TABLE model_aliases (
            name VARCHAR NOT NULL,
            alias VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            set_by VARCHAR NOT NULL,
            set_at TIMESTAMP NOT NULL,
            PRIMARY KEY (name, alias)
        );
        CREATE TABLE alias_history (
            name VARCHAR NOT NULL,
            alias VARCHAR NOT NULL,
            version INTEGER,
            previous INTEGER,
            set_by VARCHAR NOT NULL,
            set_at TIMESTAMP NOT NULL,
            action VARCHAR NOT NULL
        );
        CREATE TABLE dataset_versions (
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            fingerprint VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            parent VARCHAR,
            lineage VARCHAR NOT NULL DEFAULT '{}',
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (name, version)
        );
        CREATE TABLE predictions (
            prediction_id VARCHAR PRIMARY KEY,
            model VARCHAR NOT NULL,
            model_version INTEGER,
            run_id VARCHAR,
            image_hash VARCHAR NOT NULL,
            path VARCHAR,
            blob VARCHAR,
            label VARCHAR NOT NULL,
            confidence DOUBLE NOT NULL,
            top_k VARCHAR NOT NULL DEFAULT '[]',
            probabilities DOUBLE[],
            classes VARCHAR[],
            source VARCHAR NOT NULL,
            predicted_at TIMESTAMP NOT NULL
        );
        """
    )


Migration = Callable[["duckdb.DuckDBPyConnection"], None]
MIGRATIONS: tuple[Migration, ...] = (_v1_core, _v2_rankers_settings, _v3_run_keys, _v4_registry)
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


_FIX = (
    "Move it away or choose another home with --home (a backup made by `mlsel store export` "
    "can then be restored with `mlsel store import BACKUP.parquet`); mlsel did not modify it."
)
_RESTORE = (
    "Restore it from a `mlsel store export` backup (move it away, then run `mlsel store "
    "import BACKUP.parquet`), or move it away or choose another --home to start a new "
    "store; mlsel did not modify it."
)

# A DuckDB file is a 4 KiB main header, two 4 KiB database headers (the one with the
# higher iteration is current), then blocks of ``block_alloc_size`` bytes. A header points
# at the block of the catalog's metadata; DuckDB cuts free blocks off the end of the file,
# so its block count is not a size the file must have.
_HEADER_SIZE = 4096
_DATABASE_HEADERS = (_HEADER_SIZE, 2 * _HEADER_SIZE)
_DATA_START = 3 * _HEADER_SIZE
_BLOCK_ID_MASK = (1 << 56) - 1  # a metadata pointer keeps its index in the top byte
_NO_BLOCK = (1 << 64) - 1


def sniff_store_file(path: Path) -> None:
    """Check, by reading its headers only, that ``path`` may be a whole DuckDB database.

    Raises:
        StoreFormatError: the file is empty, a folder, not a DuckDB database, or too short
            to hold the metadata its header points at (truncated).
        StoreError: the file cannot be read at all.
    """
    if path.is_dir():
        raise StoreFormatError(f"The store path {path} is a folder, not a store file. {_FIX}")
    try:
        with open(path, "rb") as handle:
            head = handle.read(_DATA_START)
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise StoreError(
            f"Cannot read the store file {path}: {exc.strerror}. Check its permissions, or "
            "choose another home with --home."
        ) from exc
    if len(head) < 12 or head[8:12] != _DUCKDB_MAGIC:
        kind = "an empty file" if not head else "not a DuckDB database"
        raise StoreFormatError(f"The file at the store path {path} is {kind}. {_FIX}")
    needed = _metadata_end(head)
    if size < needed:
        raise truncated(path, f"{size} bytes, but its header points at byte {needed}")


def _metadata_end(head: bytes) -> int:
    """How far into the file the current header's metadata reaches (at least the headers).

    A header whose values are implausible (another DuckDB layout, damage) is not used;
    DuckDB then judges the file when it attaches it.
    """
    if len(head) < _DATA_START:
        return _DATA_START
    best: tuple[int, int] | None = None
    for offset in _DATABASE_HEADERS:
        iteration, meta, free, blocks, block_size = struct.unpack_from("<5Q", head, offset + 8)
        ids = [pointer & _BLOCK_ID_MASK for pointer in (meta, free) if pointer != _NO_BLOCK]
        plausible = 4096 <= block_size <= 1 << 30 and not block_size & (block_size - 1)
        if plausible and all(i < blocks for i in ids) and (best is None or iteration > best[0]):
            best = (iteration, (max(ids) + 1) * block_size if ids else 0)
    return _DATA_START + (best[1] if best else 0)


def check_whole(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Check that the file is long enough for the blocks DuckDB counts as used.

    Reads DuckDB's block counts only (quick on any store): a file cut short by more than
    its free blocks is refused here; a shorter cut fails later, when a read reaches it,
    with the same message.

    Raises:
        StoreFormatError: the file is shorter than its used blocks need (truncated).
    """
    found = con.execute(
        "SELECT block_size, used_blocks FROM pragma_database_size() "
        "WHERE database_name = current_database()"
    ).fetchone()
    if not found or not found[0] or found[1] is None:
        return
    needed = _DATA_START + int(found[1]) * int(found[0])
    size = path.stat().st_size
    if size < needed:
        raise truncated(path, f"{size} bytes, but its {found[1]} used blocks need {needed}")


def truncated(path: Path, detail: str) -> StoreFormatError:
    """The error for a store file cut short (a copy or a disk that stopped early)."""
    return StoreFormatError(f"The store file {path} is truncated or damaged ({detail}). {_RESTORE}")


def unreadable(path: Path, exc: Exception) -> StoreFormatError:
    """The error for a DuckDB file that cannot be opened (DuckDB's first line only)."""
    if "Could not read enough bytes" in str(exc):
        return truncated(path, "DuckDB could not read past the end of it")
    return StoreFormatError(
        f"The DuckDB file at the store path {path} cannot be read ({first_line(exc)}). {_RESTORE}"
    )


def check_tables(con: duckdb.DuckDBPyConnection, path: Path, version: int) -> list[str]:
    """Check that the store on ``con`` has every table and column of its schema version.

    Returns:
        The tables of that version.

    Raises:
        StoreFormatError: tables or columns were dropped (by hand, or by another tool).
    """
    have = _columns(con)
    need = _expected_columns(version)
    tables = sorted(set(need) - set(have))
    columns = sorted(
        f"{table}.{column}"
        for table in set(need) & set(have)
        for column in need[table] - have[table]
    )
    if not tables and not columns:
        return sorted(need)
    lacks = []
    if tables:
        lacks.append(f"the table{'s' if len(tables) > 1 else ''} {', '.join(tables)}")
    if columns:
        lacks.append(f"the column{'s' if len(columns) > 1 else ''} {', '.join(columns)}")
    raise StoreFormatError(
        f"The experiment store {path} is damaged: it lacks {' and '.join(lacks)} of its "
        f"schema version {version}. {_RESTORE}"
    )


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, frozenset[str]]:
    """The store's tables and their columns."""
    rows = con.execute(
        "SELECT table_name, list(column_name) FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' GROUP BY 1"
    ).fetchall()
    return {str(table): frozenset(map(str, names)) for table, names in rows}


@functools.cache
def _expected_columns(version: int) -> dict[str, frozenset[str]]:
    """The tables and columns a store of schema ``version`` has (built once in memory)."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.begin()
        migrate(con, target=version)
        return _columns(con)
    finally:
        con.close()


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
