"""How many cores this process may use, and how many threads it is asked to use."""

from __future__ import annotations

import os

__all__ = ["thread_budget", "usable_cores"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def thread_budget() -> int:
    """:func:`usable_cores`, or fewer when ``OMP_NUM_THREADS`` says so: a process started
    with ``OMP_NUM_THREADS=1`` (one a core, as the corpus harness runs them) keeps to one."""
    cores = usable_cores()
    asked = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(cores, int(asked)) if asked.isdigit() and int(asked) > 0 else cores
