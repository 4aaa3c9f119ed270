"""Whether the process that logged a ``running`` run is still alive.

A run records the pid and host of the process logging it. When the store is opened, a
run still ``running`` whose process is gone from this host (or whose pid now belongs to a
younger process) can never finish: it becomes ``interrupted``. Runs of other hosts are
left alone, since their processes cannot be checked from here.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

__all__ = ["HOST", "process_gone"]

HOST = socket.gethostname()
_CLOCK_SLACK_S = 2.0


def process_gone(pid: int | None, host: str | None, started_at: datetime | None) -> bool:
    """True when the process ``pid`` on ``host`` that started a run at ``started_at``
    (naive UTC) has certainly ended."""
    if pid is None or host != HOST:
        return False
    if pid == os.getpid():
        return False
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        created = float(process.create_time())
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # e.g. access denied: it exists, so it may still be running
        return False
    if started_at is None:
        return False
    started = started_at.replace(tzinfo=timezone.utc).timestamp()
    return created > started + _CLOCK_SLACK_S  # the pid was reused by a younger process
