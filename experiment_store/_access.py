"""How one store operation reaches the file: lock, attach, transaction, detach.

Concurrency contract: DuckDB lets one process at a time open a file read-write, and that
process blocks every other one, even readers. So nothing holds the file between
operations: each takes the lock file beside the store (shared to read, exclusive to write,
with a timeout), attaches the file to this process's in-memory DuckDB, runs in one
transaction, and detaches (checkpointing a write). Several processes and threads can
therefore log at once, and a committed write survives a SIGKILL the next instant.
Preparing a store creates it atomically, migrates it, marks the runs of dead processes
``interrupted``, and refuses, without writing to it, a file that is not an mlsel store.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mlsel.experiment_store._codec import utcnow
from mlsel.experiment_store._engine import attached, process_guard
from mlsel.experiment_store._liveness import HOST, process_gone
from mlsel.experiment_store._lock import StoreLock
from mlsel.experiment_store._schema import (
    SCHEMA_VERSION,
    check_version,
    migrate,
    sniff_store_file,
    unreadable,
)
from mlsel.kernel.errors import StoreError

if TYPE_CHECKING:
    import duckdb

__all__ = ["StoreAccess"]

logger = logging.getLogger(__name__)


class StoreAccess:
    """Sessions on the store file at ``path`` (see the module docstring)."""

    def __init__(self, path: Path, lock_timeout: float) -> None:
        self.path = path
        self.lock = StoreLock(path.with_name(path.name + ".lock"), lock_timeout)

    @contextmanager
    def session(self, *, write: bool, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """Guard + file lock + attached store + transaction for one operation.

        Raises:
            StoreError: the lock timed out, or DuckDB failed (the transaction is rolled back).
        """
        with process_guard(), self.lock.hold(shared=not write):
            with self._attached(write=write, what=what) as con:
                yield con

    @contextmanager
    def _attached(self, *, write: bool, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        import duckdb

        try:
            with attached(self.path, write=write) as con:
                if write:
                    con.begin()
                yield con
                if write:
                    con.commit()
        except duckdb.Error as exc:  # rolled back and detached by `attached`
            raise StoreError(f"The experiment store {self.path} failed to {what}: {exc}") from exc

    def prepare(self) -> None:
        """Create, check, migrate the store, and mark the runs of dead processes."""
        import duckdb

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the folder {self.path.parent} for the store: {exc.strerror}. "
                "Choose another home with --home."
            ) from exc
        with process_guard(), self.lock.hold(shared=False):
            if not self.path.exists():
                self._create()
                return
            sniff_store_file(self.path)
            try:
                with attached(self.path, write=False) as con:
                    version = check_version(con, self.path)
                    running = con.execute(
                        "SELECT run_id, pid, host, started_at FROM runs WHERE status = 'running'"
                    ).fetchall()
            except duckdb.Error as exc:
                raise unreadable(self.path, exc) from exc
            stale = [(run, pid) for run, pid, host, at in running if process_gone(pid, host, at)]
            if version < SCHEMA_VERSION or stale:
                with self._attached(write=True, what="migrate the store") as con:
                    migrate(con)
                    _mark_interrupted(con, stale)

    def _create(self) -> None:
        """Build a new store beside its path and move it in atomically."""
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        for leftover in (partial, partial.with_name(partial.name + ".wal")):
            leftover.unlink(missing_ok=True)
        with attached(partial, write=True) as con:
            con.begin()
            migrate(con)
            con.commit()
        os.replace(partial, self.path)
        logger.info("created the experiment store %s", self.path)


def _mark_interrupted(con: duckdb.DuckDBPyConnection, stale: Sequence[tuple[str, int]]) -> None:
    now = utcnow()
    for run_id, pid in stale:
        logger.warning("run %s was left running by a process that ended: interrupted", run_id)
        con.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, recorded_at = ?, "
            "error = coalesce(error || ' ', '') || ? WHERE run_id = ? AND status = 'running'",
            [
                now,
                now,
                f"interrupted: the process (pid {pid} on {HOST}) that logged this run ended "
                f"before finishing it; found on {now:%Y-%m-%d %H:%M} UTC",
                run_id,
            ],
        )
