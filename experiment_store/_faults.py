"""What a failed store operation means to the user: a full disk or a read-only store.

DuckDB reports failures of the operating system as text (``Could not write file "...":
No space left on device``), often over several lines. These helpers recognise the
failures a user can act on, and turn each into one line that names the folder or file
and says what to do. They import nothing heavy, so the CLI may use them for any error.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from mlsel.kernel.errors import StoreError

__all__ = [
    "StoreFullError",
    "StoreReadOnlyError",
    "first_line",
    "is_no_space",
    "is_read_only",
    "no_space",
    "read_only",
    "write_blocker",
]

_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_TEXTS = ("No space left on device", "Disk quota exceeded")
_READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
_READ_ONLY_TEXTS = ("Permission denied", "Operation not permitted", "Read-only file system")


class StoreFullError(StoreError):
    """The disk that holds the store (or an export) has no space left."""


class StoreReadOnlyError(StoreError):
    """The store file or its folder cannot be written; reading it still works.

    Attributes:
        reason: why, in a few words ("the file is not writable").
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (DuckDB adds hints and SQL on further lines)."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _errno_or_text(exc: BaseException, errnos: tuple[int, ...], texts: tuple[str, ...]) -> bool:
    if isinstance(exc, OSError) and exc.errno in errnos:
        return True
    text = str(exc)
    return any(t in text for t in texts) or any(f'"errno":"{n}"' in text for n in errnos)


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` (an OSError or a DuckDB error) says the disk is full."""
    return _errno_or_text(exc, _NO_SPACE_ERRNOS, _NO_SPACE_TEXTS)


def is_read_only(exc: BaseException) -> bool:
    """Whether ``exc`` says a file or folder may not be written."""
    return _errno_or_text(exc, _READ_ONLY_ERRNOS, _READ_ONLY_TEXTS)


def no_space(folder: Path) -> StoreFullError:
    """The one-line error for a write that found ``folder``'s disk full."""
    return StoreFullError(
        f"No space left on {folder}: free space, then rerun; nothing stored was lost."
    )


def read_only(path: Path, what: str, reason: str) -> StoreReadOnlyError:
    """The one-line error for a write (``what``) to a store that cannot be written."""
    return StoreReadOnlyError(
        f"The experiment store {path} is read-only ({reason}), so mlsel cannot {what}; "
        "reading it still works. Make it writable (chmod u+w, or chattr -i if it is "
        "immutable), or copy it to a writable folder and point --home there.",
        reason,
    )


def write_blocker(path: Path) -> str | None:
    """Why the store at ``path`` cannot be written (its file or folder), or ``None``.

    DuckDB writes the file and creates and removes ``<store>.wal`` beside it, so both the
    file and its folder must be writable. ``os.access`` answers for this process (root
    included: it may write files without write permission, but not immutable ones).
    """
    folder = path.parent
    if _read_only_mount(folder):
        return f"the file system of {folder} is mounted read-only"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    if folder.exists() and not os.access(folder, os.W_OK):
        return f"its folder {folder} is not writable"
    return None


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
