"""The lock file beside the store that lets many processes share one DuckDB file.

DuckDB lets one process at a time open a file read-write, and while it has it open no
other process may even read it. So every store operation holds this lock for the few
milliseconds its short-lived connection lives: exclusive to write, shared to read (several
read-only DuckDB connections may coexist). ``flock`` locks belong to the open file, so two
threads of one process exclude each other as well, and the kernel drops the lock of a
process that dies (SIGKILL included): a crash never leaves the store locked. A store in a
read-only folder can still be read: the lock file is opened read-only, or skipped when it
cannot be created there (then no process can write the store either).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mlsel.experiment_store._faults import no_space
from mlsel.kernel.errors import StoreError

__all__ = ["DEFAULT_LOCK_TIMEOUT", "StoreLock"]

logger = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT = 60.0
_FIRST_WAIT, _MAX_WAIT = 0.001, 0.05
_CANNOT_CREATE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)


class StoreLock:
    """An ``flock`` on ``<store>.lock``, taken with a timeout.

    Args:
        path: the lock file (created when missing; its content is never used).
        timeout: seconds to wait for the lock before raising :class:`StoreError`.
        clock / sleep: how the wait tells and spends time (tests inject their own).
    """

    def __init__(
        self,
        path: Path,
        timeout: float = DEFAULT_LOCK_TIMEOUT,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = path
        self.timeout = timeout
        self.clock, self.sleep = clock, sleep

    @contextmanager
    def hold(self, *, shared: bool) -> Iterator[None]:
        """Hold the lock (shared to read, exclusive to write) for the ``with`` body.

        Raises:
            StoreError: the lock file cannot be opened, or another process held the lock
                for longer than ``timeout`` seconds.
        """
        fd = self._open(shared)
        if fd is None:  # a read in a folder that takes no new file: nobody can write there
            yield
            return
        try:
            self._acquire(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _open(self, shared: bool) -> int | None:
        """The lock file's descriptor; ``None`` for a read when it cannot be created.

        An existing lock file in a read-only folder is opened read-only (``flock`` needs
        no write access). When it is missing and cannot be created (read-only folder or
        file system, full disk), no writer can hold it either, so a read goes ahead.
        """
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            failure = exc
        try:
            return os.open(self.path, os.O_RDONLY)
        except OSError:
            pass
        if shared and failure.errno in _CANNOT_CREATE:
            logger.debug("reading without the lock file %s: %s", self.path, failure.strerror)
            return None
        if failure.errno in (errno.ENOSPC, errno.EDQUOT):
            raise no_space(self.path.parent) from failure
        raise StoreError(
            f"Cannot open the store's lock file {self.path}: {failure.strerror}. Check that "
            "the folder exists and is writable, or choose another home with --home."
        ) from failure

    def _acquire(self, fd: int, mode: int) -> None:
        deadline = self.clock() + self.timeout
        wait = _FIRST_WAIT
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if self.clock() >= deadline:
                raise StoreError(
                    f"The experiment store is busy: another process held {self.path} for "
                    f"more than {self.timeout:g} s. Wait for it to finish (or stop it) and "
                    "run the command again."
                )
            # Jitter keeps waiting processes from waking in lock step.
            self.sleep(wait * (0.5 + random.random()))
            wait = min(wait * 2, _MAX_WAIT)
