"""Run a per-file function on every core, in chunks, with a progress callback."""

from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol, TypeVar

from mlsel.kernel.cores import usable_cores

__all__ = ["Progress", "cpu_workers", "parallel_map"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Below this many files a process pool costs more than it saves.
_SERIAL_BELOW = 256


class Progress(Protocol):
    """Progress callback: ``progress(stage, done, total)``; stage names the work."""

    def __call__(self, stage: str, done: int, total: int, /) -> None: ...


def cpu_workers() -> int:
    """Cores this process may use."""
    return usable_cores()


def _run_chunk(fn: Callable[[T], R], chunk: Sequence[T]) -> list[R]:
    return [fn(item) for item in chunk]


# Libraries that run native thread pools: a fork taken while one of their threads holds
# a lock leaves the child deadlocked or crashing (DuckDB does, once a store is open).
_FORK_UNSAFE = ("torch", "onnxruntime", "duckdb", "polars", "pyarrow", "lightgbm", "cv2")


def _context() -> multiprocessing.context.BaseContext:
    # fork is the cheapest start, and safe only while this process runs no other
    # thread; otherwise a forkserver (which preloads the per-file workers) is used.
    safe = threading.active_count() == 1 and not any(m in sys.modules for m in _FORK_UNSAFE)
    if sys.platform.startswith("linux") and safe:
        return multiprocessing.get_context("fork")
    if sys.platform == "win32":
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["mlsel.profilers._scan", "mlsel.profilers._pixels", "mlsel.profilers._verify"]
    )
    return context


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    stage: str,
    progress: Progress | None = None,
    workers: int | None = None,
    chunk_size: int = 64,
    on_start: Callable[[], None] | None = None,
) -> list[R]:
    """``[fn(x) for x in items]`` on all cores, in order.

    ``fn`` must be a module-level function (it is pickled). Small inputs run in this
    process. ``progress`` is called after every chunk. ``on_start`` is called once the
    worker processes exist: a thread started there (e.g. one that imports torch) can
    no longer be inherited by a forked worker half-way through an import.
    """
    total = len(items)
    workers = workers or cpu_workers()
    chunks = [items[i : i + chunk_size] for i in range(0, total, chunk_size)]
    results: list[R] = []
    if progress is not None:
        progress(stage, 0, total)
    if workers <= 1 or total < _SERIAL_BELOW:
        if on_start is not None:
            on_start()
        for chunk in chunks:
            results.extend(_run_chunk(fn, chunk))
            if progress is not None:
                progress(stage, len(results), total)
        return results
    workers = min(workers, len(chunks))
    logger.debug("%s: %d files on %d processes", stage, total, workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        futures = [pool.submit(_run_chunk, fn, chunk) for chunk in chunks]
        if on_start is not None:  # with fork, every worker starts at the first submit
            on_start()
        for future in futures:
            results.extend(future.result())
            if progress is not None:
                progress(stage, len(results), total)
    return results
