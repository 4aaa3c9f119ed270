"""One in-memory DuckDB per process that attaches the store file for each operation.

Creating a DuckDB instance costs tens of milliseconds, attaching a file to a live one a
few. So each process keeps one in-memory instance and, for every store operation,
``ATTACH``es the store file (read-only to read), ``USE``s it, and ``DETACH``es it at the
end, which checkpoints a write and releases DuckDB's own file lock for other processes.
Operations of one process are serialized by :data:`process_guard` (the attached alias is
process-wide). The instance is closed before a ``fork`` (a DuckDB instance must not cross
one) and reopened on the next operation, in the parent and the child alike. A detach whose
checkpoint fails (a full disk) leaves DuckDB's instance invalidated, so it is dropped too;
what was committed is in the ``.wal`` file, which the next attach replays.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

__all__ = ["ALIAS", "attached", "process_guard", "quote_path"]

ALIAS = "mlsel_store"


class _ProcessState:
    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.pid: int | None = None
        self.con: duckdb.DuckDBPyConnection | None = None


_STATE = _ProcessState()


def _before_fork() -> None:
    # No DuckDB instance may cross a fork: wait for this process's store operation to end,
    # close the instance (the next operation opens a new one), and hold the guard so no
    # thread starts another until the fork is done.
    _STATE.guard.acquire()
    if _STATE.con is not None and _STATE.pid == os.getpid():
        _STATE.con.close()
    _STATE.con = None


def _after_fork_in_parent() -> None:
    _STATE.guard.release()


def _after_fork_in_child() -> None:
    global _STATE
    _STATE = _ProcessState()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


@contextmanager
def process_guard() -> Iterator[None]:
    """Serialize the store operations of this process (threads included)."""
    with _STATE.guard:
        yield


def quote_path(path: Path) -> str:
    """``path`` as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def _engine() -> duckdb.DuckDBPyConnection:
    import duckdb

    if _STATE.con is None or _STATE.pid != os.getpid():
        _STATE.con = duckdb.connect(":memory:")
        _STATE.pid = os.getpid()
    return _STATE.con


@contextmanager
def attached(path: Path, *, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """The engine with ``path`` attached and in use; the caller holds the guard and the
    store's file lock. Raises ``duckdb.Error`` when the file cannot be attached."""
    import duckdb

    con = _engine()
    con.execute(f"ATTACH {quote_path(path)} AS {ALIAS}{'' if write else ' (READ_ONLY)'}")
    try:
        con.execute(f"USE {ALIAS}")
        yield con
    finally:
        try:
            con.rollback()  # nothing to roll back after a commit; needed after an error
        except duckdb.Error:
            pass
        try:
            con.execute("USE memory")
            con.execute(f"DETACH DATABASE IF EXISTS {ALIAS}")
        except duckdb.Error:
            _drop_engine()  # its checkpoint failed (a full disk): the next one starts afresh
            raise


def _drop_engine() -> None:
    """Close this process's instance; the next operation opens a new one."""
    import duckdb

    con, _STATE.con = _STATE.con, None
    if con is not None:
        try:
            con.close()
        except duckdb.Error:
            pass
