"""One worker process of a search: ask the study for a trial, train it, tell the result.

Workers share the study through its journal file and the experiment store through the
store's lock; they talk to the main process only through ``events`` (a queue of small
dicts the main process renders) and are told to stop through ``stop`` (an event). The
module imports nothing heavy at import time: a spawned worker sets
``CUDA_VISIBLE_DEVICES`` before torch is first imported, so it sees only its own GPU.

Event kinds: ``worker_start``, ``trial_start``, ``epoch``, ``trial_end``, ``skip``,
``log``, ``worker_done``. Each carries ``worker`` (the slot label) and ``time``.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from mlsel.metalearn.search.budget import Budget
from mlsel.metalearn.search.devices import DeviceSlot

__all__ = ["WorkerJob", "run_worker"]

logger = logging.getLogger(__name__)

MAX_SKIPS_IN_A_ROW = 25


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker needs; picklable, so it crosses to a spawned process.

    ``trainer`` names the module providing ``train``, ``StopRun`` and ``TensorCache``
    (``mlsel.trainers``; tests name a fast stand-in).
    """

    slot: DeviceSlot
    dataset_path: str
    task: str
    home: str
    folder: str
    sampler: str
    pruner: str
    budget: Budget
    seed: int | None = None
    space: Any = None
    fixed: dict[str, Any] = field(default_factory=dict)
    trainer: str = "mlsel.trainers"
    target: float | None = None


class _Events:
    """Puts events on the queue, stamped with the worker and the time."""

    def __init__(self, queue: Any, worker: str) -> None:
        self.queue, self.worker = queue, worker

    def put(self, kind: str, **data: Any) -> None:
        self.queue.put({"kind": kind, "worker": self.worker, "time": time.time(), **data})


class _StopOrOrphaned:
    """The stop event, also set when the main process died (a killed ``mlsel run``)."""

    def __init__(self, stop: Any, queue: Any) -> None:
        import multiprocessing

        self.stop, self.queue = stop, queue
        self.parent = multiprocessing.parent_process()

    def is_set(self) -> bool:
        if self.parent is not None and not self.parent.is_alive():
            self.queue.cancel_join_thread()  # nobody reads the events: exit without flushing
            return True
        return self.stop.is_set()

    def set(self) -> None:
        self.stop.set()


class _QueueLogHandler(logging.Handler):
    def __init__(self, events: _Events) -> None:
        super().__init__(logging.INFO)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.events.put("log", level=record.levelname, text=self.format(record))
        except (OSError, ValueError):  # queue closed while shutting down
            pass


class _QueueWriter(io.TextIOBase):
    """Stands in for the worker's stdout/stderr: whole lines become ``log`` events."""

    def __init__(self, events: _Events) -> None:
        self.events, self.buffer_ = events, ""

    def write(self, text: str) -> int:
        self.buffer_ += text.replace("\r", "\n")
        *lines, self.buffer_ = self.buffer_.split("\n")
        for line in lines:
            if line.strip():
                self.events.put("log", level="OUT", text=line.rstrip())
        return len(text)


def _route_output(events: _Events) -> None:
    handler = _QueueLogHandler(events)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("mlsel").setLevel(logging.INFO)
    sys.stdout = _QueueWriter(events)  # type: ignore[assignment]
    sys.stderr = _QueueWriter(events)  # type: ignore[assignment]


def _take_ticket(tickets: Any) -> bool:
    """One trial more may start (``tickets`` < 0 means no limit)."""
    with tickets.get_lock():
        if tickets.value == 0:
            return False
        if tickets.value > 0:
            tickets.value -= 1
        return True


def _give_back(tickets: Any) -> None:
    with tickets.get_lock():
        if tickets.value >= 0:
            tickets.value += 1


def _wait_for_go(go: Any, stop: Any) -> bool:
    while not go.wait(0.2):
        if stop.is_set():
            return False
    return not stop.is_set()


def run_worker(job: WorkerJob, queue: Any, stop: Any, go: Any, tickets: Any) -> None:
    """Entry point of a worker process (also callable in-process, for tests).

    Args:
        job: the worker's settings.
        queue: a multiprocessing queue for events to the main process.
        stop: a multiprocessing event; when set, no trial starts and running ones stop.
        go: a multiprocessing event set once the warm-start trials are enqueued and
            ``setup.pkl`` (profile and cost model) is written in the search folder.
        tickets: a shared int: how many more trials may start (-1: no limit).
    """
    os.environ["CUDA_VISIBLE_DEVICES"] = job.slot.cuda_visible
    stop = _StopOrOrphaned(stop, queue)
    events = _Events(queue, job.slot.label)
    _route_output(events)
    reason = "stopped"
    try:
        from mlsel.metalearn.search.trial import TrialLoop

        loop = TrialLoop(job, events, stop)
        events.put(
            "worker_start",
            device=job.slot.device,
            pid=os.getpid(),
            cuda_visible=job.slot.cuda_visible,
        )
        if not _wait_for_go(go, stop):
            return
        loop.load_setup()
        skips = 0
        while True:
            if stop.is_set():
                reason = "stopped"
                break
            if job.budget.expired():
                reason = "budget spent"
                break
            if not _take_ticket(tickets):
                reason = "max trials reached"
                break
            ran = loop.run_one()
            if ran:
                skips = 0
                last = loop.last_result
                if (
                    job.target is not None
                    and last is not None
                    and last.status == "completed"
                    and last.score is not None
                    and last.score >= job.target
                ):
                    stop.set()  # at once, before the main process hears of it
                continue
            _give_back(tickets)
            skips += 1
            if skips >= MAX_SKIPS_IN_A_ROW:
                reason = "no sampled trial fits in the time left"
                break
    except Exception as exc:  # the worker must report why it died, not vanish
        logger.exception("worker %s failed", job.slot.label)
        reason = f"worker error: {type(exc).__name__}: {exc}"
    finally:
        events.put("worker_done", reason=reason)
