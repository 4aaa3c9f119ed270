"""Export the store to one Parquet file, and import such a file into another store.

The export is one table, the union by name of ``datasets``, ``profiles``,
``profile_features``, ``runs``, ``epochs`` and ``run_keys`` with a ``kind`` column saying
which table a row comes from (``dataset``, ``profile``, ``feature``, ``run``, ``epoch``,
``key``), so one file carries a lossless copy that plain SQL can still read
(``SELECT * FROM 'x.parquet' WHERE kind = 'run'``). Its key-value metadata names the
format and schema version. Importing keeps run ids, marks runs ``imported`` (``bundled``
ones stay ``bundled``) and adds only what the store does not have: a run is known by its
run id, its import key, or any of its identities (``run_keys``: the tracker's id, name or
row hash), so importing twice adds nothing, and neither does a round trip between homes
(A to B and back to A) or the same tracker runs imported into both homes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mlsel.experiment_store._faults import first_line, is_no_space, is_read_only, no_space
from mlsel.experiment_store._schema import SCHEMA_VERSION
from mlsel.kernel.errors import StoreError, StoreFormatError

if TYPE_CHECKING:
    import duckdb

__all__ = ["ImportReport", "check_export_file", "export_parquet", "import_export"]

_FORMAT_KEY = "mlsel_export"
_FORMAT_VERSION = "1"
_KINDS = ("dataset", "profile", "feature", "run", "epoch", "key")


@dataclass(frozen=True)
class ImportReport:
    """What an import did.

    Attributes:
        path: the imported file.
        format: ``mlsel``, or the tracker format (``wandb``, ``mlflow``, ``mlflow-ui``,
            ``tracker-csv``).
        runs_added: runs new to the store (with ``dry_run``: that would be).
        runs_skipped: runs the store already had (same run id or identity).
        rows_failed: rows that could not be read as runs (see ``problems``).
        datasets_added / profiles_added: datasets and profiles new to the store.
        by_status: the added runs by status.
        problems: one line per row that failed, at most a few dozen.
        identity: what identifies a run (the tracker's id or name column, ``row hash``,
            or ``run id`` for an mlsel export).
        mapping: role -> column, as the import understood the file.
        rows_left_out: reason -> rows neither added nor already there.
        dry_run: nothing was written.
    """

    path: str
    format: str
    runs_added: int = 0
    runs_skipped: int = 0
    rows_failed: int = 0
    datasets_added: int = 0
    profiles_added: int = 0
    by_status: Mapping[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    identity: str = ""
    mapping: Mapping[str, str] = field(default_factory=dict)
    rows_left_out: Mapping[str, int] = field(default_factory=dict)
    dry_run: bool = False


def _quote(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def export_parquet(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    overwrite: bool = True,
    exclude_datasets: Sequence[str] = (),
) -> dict[str, int]:
    """Write the export to ``path`` atomically; return the rows written by kind.

    ``exclude_datasets`` (fingerprints) leaves those datasets out, with their profiles,
    runs and epochs.

    The rows go to a hidden file beside ``path``, which is synced and then renamed over
    ``path`` (linked to it when ``overwrite`` is false), so an interrupted or failed
    export leaves no partial file and any earlier export whole.

    Raises:
        StoreError: ``path`` is a folder, exists while ``overwrite`` is false, or cannot
            be written (:class:`StoreFullError` when its disk is full).
    """
    import duckdb

    path = path.expanduser().resolve()
    if path.is_dir():
        raise StoreError(
            f"The export path {path} is a folder. Give a file name such as runs.parquet."
        )
    if not overwrite and path.exists():
        raise _exists(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    left_out = ", ".join(_quote(f) for f in exclude_datasets)

    def keep(column: str) -> str:
        return f"{column} NOT IN ({left_out})" if left_out else "TRUE"

    try:
        con.execute(
            f"""
            COPY (
                SELECT 'dataset' AS kind, * FROM datasets WHERE {keep("fingerprint")}
                UNION ALL BY NAME SELECT 'profile' AS kind, * FROM profiles
                    WHERE {keep("fingerprint")}
                UNION ALL BY NAME SELECT 'feature' AS kind, * FROM profile_features
                    WHERE {keep("fingerprint")}
                UNION ALL BY NAME SELECT 'run' AS kind, * EXCLUDE (pid, host, recorded_at)
                    FROM runs WHERE {keep("dataset")}
                UNION ALL BY NAME SELECT 'epoch' AS kind, * FROM epochs
                    WHERE run_id IN (SELECT run_id FROM runs WHERE {keep("dataset")})
                UNION ALL BY NAME SELECT 'key' AS kind, k.key, k.run_id, k.kind AS key_kind
                    FROM run_keys k
                    WHERE k.run_id IN (SELECT run_id FROM runs WHERE {keep("dataset")})
            ) TO {_quote(partial)} (FORMAT parquet, KV_METADATA {{{_FORMAT_KEY}:
                '{_FORMAT_VERSION}', mlsel_schema_version: '{SCHEMA_VERSION}'}})
            """
        )
        _sync(partial)
        _publish(partial, path, overwrite)
    except (duckdb.Error, OSError) as exc:
        raise _export_failure(path, exc) from exc
    finally:
        partial.unlink(missing_ok=True)
    _sync_folder(path.parent)
    found = con.execute(
        f"SELECT kind, count(*) FROM {_quote(path)} WHERE kind <> 'key' GROUP BY kind"
    ).fetchall()
    written = {str(kind): int(n) for kind, n in found}
    return {
        kind: written.get(kind, 0) for kind in ("dataset", "profile", "feature", "run", "epoch")
    }


def _exists(path: Path) -> StoreError:
    return StoreError(
        f"The export file {path} already exists. Choose another file name, or add --force "
        "to overwrite it."
    )


def _publish(partial: Path, path: Path, overwrite: bool) -> None:
    """Put the finished ``partial`` at ``path`` in one step."""
    if overwrite:
        os.replace(partial, path)
        return
    try:
        os.link(partial, path)  # fails, atomically, when ``path`` appeared meanwhile
    except FileExistsError:
        raise _exists(path) from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise _exists(path) from None
        os.replace(partial, path)


def _sync(path: Path) -> None:
    """Flush the file ``path`` to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        _sync(folder)
    except OSError:
        pass


def _export_failure(path: Path, exc: Exception) -> StoreError:
    """The one-line error for an export that could not be written."""
    if is_no_space(exc):
        return no_space(path.parent)
    if is_read_only(exc):
        return StoreError(
            f"Cannot write the export {path}: {first_line(exc)}. Choose a writable folder."
        )
    return StoreError(
        f"The export to {path} failed: {first_line(exc)}. Nothing was written there; "
        "check the path and run the export again."
    )


def check_export_file(path: Path) -> Path:
    """Check that ``path`` is an mlsel export before the store is locked for writing.

    Raises:
        StoreError: the file does not exist.
        StoreFormatError: it is not Parquet, or not an mlsel export.
    """
    import duckdb

    path = path.expanduser().resolve()
    if not path.is_file():
        raise StoreError(f"No file {path} to import. Check the path.")
    hint = "For an experiment-tracker CSV leave --format out (it is found from the file)."
    con = duckdb.connect()
    try:
        meta = dict(
            con.execute(
                "SELECT key::VARCHAR, value::VARCHAR FROM parquet_kv_metadata(?)", [str(path)]
            ).fetchall()
        )
    except duckdb.Error as exc:
        raise StoreFormatError(f"{path} is not a Parquet file ({exc}). {hint}") from exc
    finally:
        con.close()
    if meta.get(_FORMAT_KEY) != _FORMAT_VERSION:
        raise StoreFormatError(
            f"{path} is a Parquet file but not an mlsel export (made by `mlsel store export`). "
            f"{hint}"
        )
    version = int(meta.get("mlsel_schema_version", "0") or 0)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was exported by a newer mlsel (schema {version}; this one knows "
            f"{SCHEMA_VERSION}). Upgrade mlsel to import it."
        )
    return path


def _count(con: duckdb.DuckDBPyConnection, query: str) -> int:
    found = con.execute(query).fetchone()
    return int(found[0]) if found else 0


def import_export(
    con: duckdb.DuckDBPyConnection, path: Path, now: datetime, *, dry_run: bool = False
) -> ImportReport:
    """Add what the export at ``path`` holds and the store on ``con`` lacks (with
    ``dry_run``, only count it: nothing is written)."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _import AS SELECT * FROM read_parquet({_quote(path)})"
    )
    has_keys = "key_kind" in {
        str(name)
        for (name,) in con.execute("SELECT name FROM pragma_table_info('_import')").fetchall()
    }
    # Every identity of each incoming run: its import key, and (newer exports) its run_keys.
    keys = "SELECT run_id, import_key AS key, 'legacy' AS kind FROM _import " + (
        "WHERE kind = 'run' AND import_key IS NOT NULL"
    )
    if has_keys:
        keys += " UNION SELECT run_id, key, key_kind FROM _import WHERE kind = 'key'"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _keys AS {keys}")
    source = "CASE WHEN source = 'bundled' THEN 'bundled' ELSE 'imported' END"
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _new_runs AS
        SELECT run_id FROM _import i WHERE kind = 'run'
          AND run_id NOT IN (SELECT run_id FROM runs)
          AND run_id NOT IN (SELECT k.run_id FROM _keys k WHERE
              k.key IN (SELECT import_key FROM runs WHERE import_key IS NOT NULL)
              OR k.key IN (SELECT key FROM run_keys))
        """
    )
    datasets_added = _count(
        con,
        "SELECT count(*) FROM _import WHERE kind = 'dataset' "
        "AND fingerprint NOT IN (SELECT fingerprint FROM datasets)",
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _new_profiles AS
        SELECT fingerprint, profiler_version FROM _import WHERE kind = 'profile'
        EXCEPT SELECT fingerprint, profiler_version FROM profiles
        """
    )
    by_status = dict(
        con.execute(
            "SELECT CASE WHEN status = 'running' THEN 'interrupted' ELSE status END, count(*) "
            "FROM _import JOIN _new_runs USING (run_id) WHERE kind = 'run' GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    if not dry_run:
        _insert(con, now, source)
    added = sum(by_status.values())
    total = _count(con, "SELECT count(*) FROM _import WHERE kind = 'run'")
    report = ImportReport(
        path=str(path),
        format="mlsel",
        runs_added=added,
        runs_skipped=total - added,
        datasets_added=datasets_added,
        profiles_added=_count(con, "SELECT count(*) FROM _new_profiles"),
        by_status=by_status,
        identity="run id, import key and tracker identities",
        dry_run=dry_run,
    )
    for table in ("_import", "_keys", "_new_runs", "_new_profiles"):
        con.execute(f"DROP TABLE {table}")
    return report


def _insert(con: duckdb.DuckDBPyConnection, now: datetime, source: str) -> None:
    """Copy the new datasets, profiles, runs, epochs and run keys out of ``_import``."""
    from mlsel.experiment_store._codec import RUN_COLUMNS

    con.execute(
        f"""
        INSERT INTO datasets
        SELECT fingerprint, name, task, path, {source}, created_at FROM _import
        WHERE kind = 'dataset' AND fingerprint NOT IN (SELECT fingerprint FROM datasets)
        """
    )
    con.execute(
        """
        INSERT INTO profiles SELECT fingerprint, profiler_version, warnings, created_at
        FROM _import JOIN _new_profiles USING (fingerprint, profiler_version)
        WHERE kind = 'profile';
        INSERT INTO profile_features SELECT fingerprint, profiler_version, feature, value
        FROM _import JOIN _new_profiles USING (fingerprint, profiler_version)
        WHERE kind = 'feature';
        """
    )
    local = {
        "source": source,
        "pid": "NULL",
        "host": "NULL",
        "recorded_at": "?",
        "status": "CASE WHEN status = 'running' THEN 'interrupted' ELSE status END",
    }
    terms = ", ".join(local.get(name, name) for name in RUN_COLUMNS)
    con.execute(
        f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) SELECT {terms} "
        "FROM _import JOIN _new_runs USING (run_id) WHERE kind = 'run'",
        [now],
    )
    con.execute(
        "INSERT INTO epochs SELECT run_id, epoch, train_loss, val_loss, score, seconds "
        "FROM _import JOIN _new_runs USING (run_id) WHERE kind = 'epoch'"
    )
    con.execute(
        """
        INSERT INTO run_keys
        SELECT DISTINCT ON (key) key, run_id, kind FROM _keys JOIN _new_runs USING (run_id)
        WHERE key NOT IN (SELECT key FROM run_keys) ORDER BY key, run_id
        """
    )
