"""The experiment store: one DuckDB file shared safely by every mlsel process.

A :class:`Store` holds no connection: each call is one short session under the lock file
beside the store (see :mod:`._access` for the concurrency contract), so many processes
and threads can log at once. A finished run is committed before the call returns and
:meth:`Store.log_epoch` commits each epoch, so a killed process keeps its curve. On open,
runs left ``running`` by dead processes of this host become ``interrupted``. A file at the
store path that is not an mlsel store (or is truncated, or lacks tables) is never modified.
On a full disk or a read-only store, writes fail with one line and reads go on.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.experiment_store import _frames, _predictions, _rankers, _tables
from mlsel.experiment_store._access import StoreAccess
from mlsel.experiment_store._codec import (
    EPOCH_COLUMNS,
    RUN_COLUMNS,
    epoch_rows,
    result_columns,
    run_row,
    utcnow,
)
from mlsel.experiment_store._exchange_methods import ExchangeMethods
from mlsel.experiment_store._liveness import HOST
from mlsel.experiment_store._lock import DEFAULT_LOCK_TIMEOUT
from mlsel.experiment_store._registry import Registry
from mlsel.experiment_store._validate import (
    check_config,
    check_dataset,
    check_result,
    check_source,
)
from mlsel.kernel.errors import MlselError, StoreError
from mlsel.kernel.home import Home
from mlsel.kernel.records import Config, DatasetProfile, EpochRecord, RunRecord, RunResult

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    from mlsel.experiment_store._predictions import PredictionRow
    from mlsel.experiment_store._rankers import RankerEntry

__all__ = ["Store"]

logger = logging.getLogger(__name__)


def new_run_id() -> str:
    """A fresh run id: 16 hex digits (64 random bits)."""
    return uuid.uuid4().hex[:16]


class Store(ExchangeMethods):
    """The experiment store at ``path``. Use :meth:`open` or :meth:`at`, which prepare it.

    Args:
        path: the DuckDB file.
        lock_timeout: seconds an operation waits for another process's lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT):
        self.path = Path(path).expanduser().absolute()
        self.lock_timeout = lock_timeout
        self._access = StoreAccess(self.path, lock_timeout)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> Store:
        """The store of ``home`` (default ``$MLSEL_HOME``), created or migrated as needed."""
        return cls.at(Home.resolve(home).store, lock_timeout=lock_timeout)

    @classmethod
    def at(
        cls, path: str | os.PathLike[str], *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> Store:
        """The store file at ``path``, created or migrated as needed.

        Opening a store that needs no migration writes nothing, so it works on a full
        disk and on a read-only store (writes then fail with one line saying so).

        Raises:
            StoreFormatError: the file exists and is not an mlsel store, is truncated, or
                lacks tables of its schema (left untouched).
            StoreError: the store is newer than this mlsel, or locked for too long.
        """
        store = cls(path, lock_timeout=lock_timeout)
        store._access.prepare()
        return store

    def _session(self, *, write: bool, what: str, checkpoint: bool = False) -> Any:
        """Lock + attached store + transaction for one operation (see ``_access``)."""
        return self._access.session(write=write, what=what, checkpoint=checkpoint)

    # -- datasets and profiles -------------------------------------------------------------

    def save_profile(self, profile: DatasetProfile, source: str = "local") -> None:
        """Add or update a dataset and its profile (replacing that profiler version's)."""
        if not isinstance(profile, DatasetProfile):
            raise StoreError(
                f"save_profile takes a DatasetProfile. Got {type(profile).__name__} instead."
            )
        check_dataset(profile.fingerprint)
        check_source(source)
        with self._session(write=True, what="save a profile") as con:
            _tables.write_profile(con, profile, source, utcnow())

    def get_profile(
        self, fingerprint: str, profiler_version: str | None = None
    ) -> DatasetProfile | None:
        """The dataset's profile of ``profiler_version`` (None: the latest), or None."""
        with self._session(write=False, what="read a profile") as con:
            return _tables.read_profile(con, fingerprint, profiler_version)

    def datasets_frame(self) -> pl.DataFrame:
        """One row per dataset: fingerprint, name, task, source, n_runs, path, created_at."""
        with self._session(write=False, what="list datasets") as con:
            return _frames.datasets_frame(con)

    # -- runs: writing ---------------------------------------------------------------------

    def start_run(
        self,
        dataset_fp: str,
        config: Config,
        *,
        source: str = "local",
        hardware: Mapping[str, str] | None = None,
        versions: Mapping[str, str] | None = None,
        dataset: tuple[str, str, str] | None = None,
    ) -> str:
        """Record a run as ``running`` (with this process's pid and host); return its id.
        ``dataset`` (name, task, folder) fills in what the store knows of the dataset."""
        check_dataset(dataset_fp)
        check_config(config)
        check_source(source)
        run_id, now = new_run_id(), utcnow()
        running = RunResult(
            status="running", hardware=dict(hardware or {}), versions=dict(versions or {})
        )
        row = run_row(
            run_id,
            dataset_fp,
            source,
            config,
            running,
            started_at=now,
            pid=os.getpid(),
            host=HOST,
            recorded_at=now,
        )
        with self._session(write=True, what="start a run") as con:
            _tables.ensure_dataset(con, [dataset_fp], source, now, known=dataset)
            _tables.insert_rows(con, "runs", RUN_COLUMNS, [row])
        return run_id

    def log_epoch(self, run_id: str, epoch: EpochRecord) -> None:
        """Record (or replace) one epoch of a running run; committed before returning."""
        if not isinstance(epoch, EpochRecord):
            raise StoreError(f"log_epoch takes an EpochRecord. Got {type(epoch).__name__}.")
        with self._session(write=True, what="log an epoch") as con:
            status = self._status(con, run_id)
            if status != "running":
                raise StoreError(
                    f"Run {run_id} is {status}; epochs can only be logged to a running run."
                )
            con.execute("DELETE FROM epochs WHERE run_id = ? AND epoch = ?", [run_id, epoch.epoch])
            _tables.insert_rows(con, "epochs", EPOCH_COLUMNS, epoch_rows(run_id, [epoch]))

    def finish_run(self, run_id: str, result: RunResult) -> None:
        """Record the outcome of a started run; a non-empty ``result.curve`` replaces the
        logged epochs, and its hardware/versions are merged over those given at start."""
        check_result(result)
        now = utcnow()
        with self._session(write=True, what="finish a run") as con:
            status = self._status(con, run_id)
            if status not in ("running", "interrupted"):
                raise StoreError(f"Run {run_id} is already {status}; it cannot be finished again.")
            old_hw, old_versions = con.execute(
                "SELECT hardware, versions FROM runs WHERE run_id = ?", [run_id]
            ).fetchone()
            values = result_columns(result)
            values["hardware"] = json.dumps({**json.loads(old_hw), **result.hardware})
            values["versions"] = json.dumps({**json.loads(old_versions), **result.versions})
            values.update(finished_at=now, recorded_at=now)
            assignments = ", ".join(f"{name} = ?" for name in values)
            con.execute(
                f"UPDATE runs SET {assignments} WHERE run_id = ?", [*values.values(), run_id]
            )
            if result.curve:
                con.execute("DELETE FROM epochs WHERE run_id = ?", [run_id])
                _tables.insert_rows(con, "epochs", EPOCH_COLUMNS, epoch_rows(run_id, result.curve))

    def log_run(
        self,
        dataset_fp: str,
        config: Config,
        result: RunResult,
        *,
        source: str = "local",
        import_key: str | None = None,
    ) -> str:
        """Record a finished run in one call; with an ``import_key`` already in the store,
        nothing is added and the existing run's id is returned."""
        return self._log_many([(dataset_fp, config, result)], source, [import_key])[0]

    def log_runs(
        self, rows: Sequence[tuple[str, Config, RunResult]], *, source: str = "local"
    ) -> list[str]:
        """Record many finished runs in one transaction (one lock, one commit)."""
        return self._log_many(rows, source, [None] * len(rows))

    def _log_many(
        self,
        rows: Sequence[tuple[str, Config, RunResult]],
        source: str,
        import_keys: Sequence[str | None],
    ) -> list[str]:
        check_source(source)
        for dataset_fp, config, result in rows:
            check_dataset(dataset_fp)
            check_config(config)
            check_result(result)
        now = utcnow()
        ids: list[str] = []
        run_rows: list[dict[str, Any]] = []
        curves: list[dict[str, Any]] = []
        with self._session(write=True, what="log runs") as con:
            known = self._known_import_keys(con, [k for k in import_keys if k is not None])
            for (dataset_fp, config, result), key in zip(rows, import_keys, strict=True):
                if key is not None and key in known:
                    ids.append(known[key])
                    continue
                run_id = new_run_id()
                started = now - timedelta(seconds=result.wall_seconds or 0.0)
                run_rows.append(
                    run_row(
                        run_id,
                        dataset_fp,
                        source,
                        config,
                        result,
                        started_at=started,
                        finished_at=now,
                        import_key=key,
                        recorded_at=now,
                    )
                )
                curves.extend(epoch_rows(run_id, result.curve))
                ids.append(run_id)
            _tables.ensure_dataset(con, [r["dataset"] for r in run_rows], source, now)
            _tables.insert_rows(con, "runs", RUN_COLUMNS, run_rows)
            _tables.insert_rows(con, "epochs", EPOCH_COLUMNS, curves)
        return ids

    @staticmethod
    def _known_import_keys(con: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        found = con.execute(
            "SELECT import_key, run_id FROM runs WHERE import_key IN (SELECT unnest(?::VARCHAR[]))",
            [list(keys)],
        ).fetchall()
        return dict(found)

    @staticmethod
    def _status(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
        found = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if found is None:
            raise StoreError(f"No run {run_id!r} in the store. `mlsel runs` lists the runs.")
        return str(found[0])

    # -- runs: reading ---------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        """One run with its curve. Raises StoreError when there is no such run."""
        with self._session(write=False, what="read a run") as con:
            found = _tables.fetch_records(con, "r.run_id = ?", [run_id])
        if not found:
            raise StoreError(f"No run {run_id!r} in the store. `mlsel runs` lists the runs.")
        return found[0]

    def epochs(self, run_id: str) -> list[EpochRecord]:
        """The curve of one run, by epoch."""
        with self._session(write=False, what="read epochs") as con:
            return _tables.fetch_epochs(con, [run_id]).get(run_id, [])

    def list_runs(
        self,
        dataset: str | None = None,
        status: str | None = None,
        source: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first; ``dataset`` is a fingerprint, its prefix, or a name."""
        where, params = _tables.dataset_filter(dataset)
        where += " AND (? IS NULL OR r.status = ?) AND (? IS NULL OR r.source = ?)"
        params += [status, status, source, source]
        with self._session(write=False, what="list runs") as con:
            return _tables.fetch_records(con, where, params, limit)

    def runs_frame(self, dataset: str | None = None, status: str | None = None) -> pl.DataFrame:
        """Runs as a Polars frame (one row a run, config fields as columns)."""
        with self._session(write=False, what="list runs") as con:
            return _frames.runs_frame(con, dataset, status)

    def training_frame(self) -> pl.DataFrame:
        """The ranker's training rows: every finished run with config and features."""
        with self._session(write=False, what="build the training frame") as con:
            return _frames.training_frame(con)

    def sql(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> pl.DataFrame:
        """Run read-only SQL on the store; the result as a Polars frame."""
        with self._session(write=False, what="run the SQL query") as con:
            return _frames.sql_frame(con, query, params)

    def info(self) -> dict[str, Any]:
        """Path, schema version, size on disk, and counts by status, source and table."""
        with self._session(write=False, what="describe the store") as con:
            details = _frames.info(con)
        files = (self.path, self.path.with_name(self.path.name + ".wal"))
        size = sum(p.stat().st_size for p in files if p.exists())
        return {"path": str(self.path), **details, "size_bytes": size}

    # -- rankers and settings --------------------------------------------------------------

    def save_ranker(
        self,
        version: str,
        path: str | os.PathLike[str],
        *,
        rows: int,
        evaluation: Mapping[str, Any],
        active: bool,
    ) -> None:
        """Record a fitted ranker file; ``active=True`` makes it the only active one."""
        with self._session(write=True, what="save a ranker") as con:
            _rankers.save(con, version, str(path), rows, evaluation, active, utcnow())

    def active_ranker(self) -> RankerEntry | None:
        """The active ranker, or None before the first refit."""
        with self._session(write=False, what="read rankers") as con:
            found = _rankers.list_entries(con, active_only=True)
        return found[0] if found else None

    def list_rankers(self) -> list[RankerEntry]:
        """Every ranker, newest first."""
        with self._session(write=False, what="read rankers") as con:
            return _rankers.list_entries(con)

    def activate_ranker(self, version: str) -> None:
        """Make ``version`` the active ranker."""
        with self._session(write=True, what="activate a ranker") as con:
            _rankers.activate(con, version)

    def runs_since_active_ranker(self) -> int:
        """Finished runs recorded since the active ranker was trained (all if none)."""
        with self._session(write=False, what="count runs") as con:
            return _rankers.count_runs_since_active(con)

    # -- the model registry and the prediction log ------------------------------------------

    @property
    def registry(self) -> Registry:
        """Named models, their aliases and dataset versions (see :mod:`._registry`)."""
        return Registry(self)

    def log_predictions(self, rows: Sequence[PredictionRow]) -> int:
        """Add logged predictions (one row per id); returns how many were new."""
        with self._session(write=True, what="log predictions") as con:
            return _predictions.insert_predictions(con, rows)

    def predictions_frame(
        self, model: str | None = None, model_version: int | None = None
    ) -> pl.DataFrame:
        """The logged predictions (of ``model``, of one version) as a Polars frame."""
        with self._session(write=False, what="read the prediction log") as con:
            return _predictions.predictions_frame(con, model, model_version)

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A small JSON value kept in the store, or ``default``."""
        with self._session(write=False, what="read a setting") as con:
            found = con.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return default if found is None else json.loads(found[0])

    def set_setting(self, key: str, value: Any) -> None:
        """Keep a small JSON-able value under ``key``."""
        try:
            text = json.dumps(value)
        except TypeError as exc:
            raise MlselError(f"The setting {key!r} must be JSON-able. Got {value!r}.") from exc
        with self._session(write=True, what="save a setting") as con:
            con.execute(
                "INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                "value = excluded.value",
                [key, text],
            )
