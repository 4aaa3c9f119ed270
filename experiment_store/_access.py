"""How one store operation reaches the file: lock, attach, transaction, detach.

Concurrency contract: DuckDB lets one process at a time open a file read-write, and that
process blocks every other one, even readers. So nothing holds the file between
operations: each takes the lock file beside the store (shared to read, exclusive to write,
with a timeout), attaches the file to this process's in-memory DuckDB, runs in one
transaction, and detaches (checkpointing a write). Several processes and threads can
therefore log at once, and a committed write survives a SIGKILL the next instant.
Preparing a store creates it atomically, migrates it, marks the runs of dead processes
``interrupted``, and refuses, without writing to it, a file that is not an mlsel store, is
truncated, or lacks tables of its schema. Opening a store that needs no migration writes
nothing, so reads work on a full disk and on a read-only store; there, marking runs of dead
processes waits for a later open. Failures reach the caller as one line: a full disk
(:class:`StoreFullError`), a read-only store (:class:`StoreReadOnlyError`, checked before
any write is tried), or DuckDB's first line. A committed write whose checkpoint fails is
kept in the ``.wal`` file (replayed by the next attach) and only logged as a warning.
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
from mlsel.experiment_store._faults import (
    StoreFullError,
    StoreReadOnlyError,
    first_line,
    is_no_space,
    is_read_only,
    no_space,
    read_only,
    write_blocker,
)
from mlsel.experiment_store._liveness import HOST, process_gone
from mlsel.experiment_store._lock import StoreLock
from mlsel.experiment_store._schema import (
    SCHEMA_VERSION,
    check_tables,
    check_version,
    check_whole,
    migrate,
    sniff_store_file,
    truncated,
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
    def session(
        self, *, write: bool, what: str, checkpoint: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """Guard + file lock + attached store + transaction for one operation.

        Args:
            write: take the lock exclusively and attach the file read-write.
            what: the operation, for messages ("log runs").
            checkpoint: after the commit, fold the ``.wal`` file into the store at once
                (after a large write, so no large log is left beside the store).

        Raises:
            StoreReadOnlyError: a write to a store that cannot be written (nothing tried).
            StoreFullError: the disk is full (the transaction is rolled back).
            StoreError: the lock timed out, or DuckDB failed (the transaction is rolled back).
        """
        if write:
            reason = write_blocker(self.path)
            if reason is not None:
                raise read_only(self.path, what, reason)
        with process_guard(), self.lock.hold(shared=not write):
            with self._attached(write=write, what=what, checkpoint=checkpoint) as con:
                yield con

    @contextmanager
    def _attached(
        self, *, write: bool, what: str, checkpoint: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        import duckdb

        committed = False
        try:
            with attached(self.path, write=write) as con:
                if write:
                    con.begin()
                yield con
                if write:
                    con.commit()
                    committed = True
                    if checkpoint:
                        con.execute("CHECKPOINT")
        except duckdb.Error as exc:  # rolled back and detached by `attached`
            if not committed:
                raise self._failure(exc, what=what, write=write) from exc
            # The commit is in the .wal file (the next attach replays it); only folding
            # it into the store failed, so the write stands and the caller goes on.
            logger.warning("%s", self._unfolded(exc))

    def _failure(self, exc: Exception, *, what: str, write: bool) -> StoreError:
        """The one-line error for a DuckDB failure during ``what``."""
        if is_no_space(exc):
            return no_space(self.path.parent)
        if write and is_read_only(exc):
            return read_only(self.path, what, first_line(exc))
        if "Could not read enough bytes" in str(exc):
            return truncated(self.path, "DuckDB could not read past the end of it")
        return StoreError(f"The experiment store {self.path} failed to {what}: {first_line(exc)}")

    def _unfolded(self, exc: Exception) -> str:
        """The warning for a committed write whose checkpoint failed."""
        cause = (
            f"no space left on {self.path.parent}: free space"
            if is_no_space(exc)
            else first_line(exc)
        )
        return (
            f"The experiment store {self.path} keeps the last write in "
            f"{self.path.name}.wal, which it could not fold into the store ({cause}); "
            "nothing stored was lost, and the next write retries."
        )

    def prepare(self) -> None:
        """Create, check, migrate the store, and mark the runs of dead processes.

        Opening a store that is up to date writes nothing (it reads under the shared
        lock), so it works on a full disk and on a read-only store.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if is_no_space(exc):
                raise no_space(self.path.parent) from exc
            raise StoreError(
                f"Cannot create the folder {self.path.parent} for the store: {exc.strerror}. "
                "Choose another home with --home."
            ) from exc
        if not self.path.exists():
            with process_guard(), self.lock.hold(shared=False):
                if not self.path.exists():
                    self._create()
                    return
        version, stale = self._inspect()
        if version < SCHEMA_VERSION:
            # migrate() applies only what is missing, so a process that migrated in the
            # meantime leaves nothing to do here.
            what = f"migrate it from schema version {version} to {SCHEMA_VERSION}"
            try:
                with self.session(write=True, what=what) as con:
                    migrate(con)
            except StoreReadOnlyError as exc:  # this mlsel cannot read the old schema
                raise StoreReadOnlyError(
                    f"The experiment store {self.path} must be migrated from schema version "
                    f"{version} to {SCHEMA_VERSION} but is read-only ({exc.reason}). Make it "
                    "writable once (chmod u+w, or chattr -i if it is immutable), or use the "
                    "mlsel that wrote it."
                ) from exc
        if stale:
            self._mark_stale(stale)

    def _inspect(self) -> tuple[int, list[tuple[str, int]]]:
        """The store's schema version and its runs left running by ended processes.

        Raises:
            StoreFormatError: the file is foreign, truncated, unreadable or damaged.
            StoreError: the store is newer than this mlsel.
        """
        import duckdb

        with process_guard(), self.lock.hold(shared=True):
            sniff_store_file(self.path)
            try:
                with attached(self.path, write=False) as con:
                    version = check_version(con, self.path)
                    check_tables(con, self.path, version)
                    check_whole(con, self.path)
                    running = con.execute(
                        "SELECT run_id, pid, host, started_at FROM runs WHERE status = 'running'"
                    ).fetchall()
            except duckdb.Error as exc:
                if is_no_space(exc):
                    raise no_space(self.path.parent) from exc
                raise unreadable(self.path, exc) from exc
        stale = [(run, pid) for run, pid, host, at in running if process_gone(pid, host, at)]
        return version, stale

    def _mark_stale(self, stale: Sequence[tuple[str, int]]) -> None:
        """Mark ``stale`` runs interrupted; on a full disk or read-only store, leave them."""
        try:
            with self.session(write=True, what="mark runs of ended processes") as con:
                marked = _mark_interrupted(con, stale)
        except (StoreFullError, StoreReadOnlyError) as exc:
            logger.warning(
                "%d run(s) of ended processes stay 'running' for now: %s", len(stale), exc
            )
            return
        for run_id in marked:  # once committed; another process may have marked the rest
            logger.warning("run %s was left running by a process that ended: interrupted", run_id)

    def _create(self) -> None:
        """Build a new store beside its path and move it in atomically.

        Raises:
            StoreFullError: the disk is full (nothing is left behind).
            StoreError: the folder cannot take the new file.
        """
        import duckdb

        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        leftovers = (partial, partial.with_name(partial.name + ".wal"))
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        try:
            with attached(partial, write=True) as con:
                con.begin()
                migrate(con)
                con.commit()
            os.replace(partial, self.path)
        except (duckdb.Error, OSError) as exc:
            for leftover in leftovers:
                leftover.unlink(missing_ok=True)
            if is_no_space(exc):
                raise no_space(self.path.parent) from exc
            raise StoreError(
                f"Cannot create the experiment store {self.path}: {first_line(exc)}. Make "
                "its folder writable, or choose another home with --home."
            ) from exc
        _sync_folder(self.path.parent)
        logger.info("created the experiment store %s", self.path)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _mark_interrupted(
    con: duckdb.DuckDBPyConnection, stale: Sequence[tuple[str, int]]
) -> list[str]:
    """Mark the ``stale`` runs still running ``interrupted``; return those it marked."""
    now = utcnow()
    marked: list[str] = []
    for run_id, pid in stale:
        found = con.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, recorded_at = ?, "
            "error = coalesce(error || ' ', '') || ? WHERE run_id = ? AND status = 'running' "
            "RETURNING run_id",
            [
                now,
                now,
                f"interrupted: the process (pid {pid} on {HOST}) that logged this run ended "
                f"before finishing it; found on {now:%Y-%m-%d %H:%M} UTC",
                run_id,
            ],
        ).fetchall()
        marked.extend(str(row[0]) for row in found)
    return marked
