"""One worker process of a search: ask the study for a trial, train it, tell the result.

Workers share the study through its journal file and the experiment store through the
store's lock; they talk to the main process only through ``events`` (a queue of the
frozen records of :mod:`.events`) and are told to stop through ``stop`` (an event).
Everything a worker needs arrives in its :class:`WorkerJob`: the dataset as the main
process read it, the profile and the cost model, so no worker reads the dataset again.
The module imports nothing heavy at import time: a spawned worker sets
``CUDA_VISIBLE_DEVICES`` and its thread count before torch is first imported, so it sees
only its own GPU.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mlsel.metalearn.search.budget import Budget
from mlsel.metalearn.search.devices import DeviceSlot
from mlsel.metalearn.search.events import SearchEvent, WorkerDone, WorkerLog, WorkerStarted

if TYPE_CHECKING:
    from mlsel.kernel.dataset import Dataset
    from mlsel.kernel.records import Config, DatasetProfile
    from mlsel.metalearn.cost import CostModel
    from mlsel.metalearn.search.trainer import Trainer
    from mlsel.metalearn.space import CandidateSpace

__all__ = ["EventSink", "StopSignals", "WorkerJob", "run_worker"]

logger = logging.getLogger(__name__)

MAX_SKIPS_IN_A_ROW = 25
E = TypeVar("E", bound=SearchEvent)


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker needs; picklable, so it crosses to a spawned process.

    Attributes:
        slot: the worker's device.
        dataset: the dataset, read once by the main process.
        profile / cost_model: for the cost model's predictions (``None``: no trial is
            skipped on predicted time).
        home / folder: the mlsel home and the search's folder (its study).
        sampler / pruner / seed: how the worker's sampler and pruner are made.
        budget: the search's budget.
        trainer: what trains the trials (:class:`~.trainer.Trainer`).
        space / fixed: the candidate space and the params held constant.
        target: stop the search once a trial completes with at least this score.
        shortlist: the ranked configs trials are drawn from (see
            :meth:`~mlsel.metalearn.search.trial.TrialLoop._from_shortlist`); empty: the
            sampler draws from the whole space.
    """

    slot: DeviceSlot
    dataset: Dataset
    profile: DatasetProfile | None
    cost_model: CostModel | None
    home: str
    folder: str
    sampler: str
    pruner: str
    budget: Budget
    trainer: Trainer
    seed: int | None = None
    space: CandidateSpace | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    target: float | None = None
    shortlist: tuple[Config, ...] = ()


class EventSink:
    """Puts events on the queue, stamped with the worker and the budget's clock."""

    def __init__(self, queue: Any, worker: str, budget: Budget) -> None:
        self.queue, self.worker, self.budget = queue, worker, budget

    def emit(self, kind: type[E], **data: Any) -> None:
        """Put one ``kind`` event with ``data`` on the queue."""
        self.queue.put(kind(worker=self.worker, time=self.budget.now(), **data))


class StopSignals:
    """What tells a worker to stop: ``stop`` (the budget, the target, another worker) ends
    a running trial as ``timeout``; ``interrupt`` (the user's Ctrl-C or SIGTERM) ends it as
    ``interrupted``."""

    def __init__(self, stop: Any, interrupt: Any) -> None:
        self.stop, self.interrupt = stop, interrupt

    def is_set(self) -> bool:
        return bool(self.stop.is_set() or self.interrupt.is_set())

    def interrupted(self) -> bool:
        return bool(self.interrupt.is_set())

    def set(self) -> None:
        self.stop.set()


def _exit_with_parent() -> None:
    """End this worker the moment the main process dies (``kill -9`` of ``mlsel run``).

    The worker's running run stays ``running`` in the store with this process's pid, and
    the next open of the store marks it ``interrupted``; its Optuna trial stays running,
    and ``--resume`` closes it as interrupted and enqueues it again.
    """
    import multiprocessing
    import threading
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None:  # called in-process (tests)
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(70)  # nobody reads the events and nothing may be written after a kill

    threading.Thread(target=watch, name="mlsel-parent-watch", daemon=True).start()


class _QueueLogHandler(logging.Handler):
    def __init__(self, events: EventSink) -> None:
        super().__init__(logging.INFO)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.events.emit(WorkerLog, level=record.levelname, text=self.format(record))
        except (OSError, ValueError):  # queue closed while shutting down
            pass


class _QueueWriter(io.TextIOBase):
    """Stands in for the worker's stdout/stderr: whole lines become log events."""

    def __init__(self, events: EventSink) -> None:
        self.events, self.buffer_ = events, ""

    def write(self, text: str) -> int:
        self.buffer_ += text.replace("\r", "\n")
        *lines, self.buffer_ = self.buffer_.split("\n")
        for line in lines:
            if line.strip():
                self.events.emit(WorkerLog, level="OUT", text=line.rstrip())
        return len(text)


def _route_output(events: EventSink) -> None:
    handler = _QueueLogHandler(events)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("mlsel").setLevel(logging.INFO)
    sys.stdout = _QueueWriter(events)
    sys.stderr = _QueueWriter(events)


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


def _pin(slot: DeviceSlot) -> None:
    """Give this process only the slot's GPU and threads (before torch is imported)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = slot.cuda_visible
    os.environ["OMP_NUM_THREADS"] = str(slot.threads)  # torch's intra-op threads
    if "torch" in sys.modules:  # in-process callers (tests) may have it loaded already
        sys.modules["torch"].set_num_threads(slot.threads)


def _trials(loop: Any, job: WorkerJob, stop: StopSignals, tickets: Any) -> str:
    """Run trials until one of the ends; returns why it ended."""
    skips = 0
    while True:
        if stop.interrupted():
            return "interrupted"
        if stop.is_set():
            return "stopped"
        if job.budget.expired():
            return "budget spent"
        if loop.nothing_fits():
            return "nothing in the shortlist fits in the time left"
        if not _take_ticket(tickets):
            return "max trials reached"
        if loop.run_one():
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
            return "no sampled trial fits in the time left"


def run_worker(job: WorkerJob, queue: Any, stop: Any, interrupt: Any, tickets: Any) -> None:
    """Entry point of a worker process (also callable in-process, for tests).

    Args:
        job: the worker's settings and inputs.
        queue: a multiprocessing queue for events to the main process.
        stop: a multiprocessing event; when set, no trial starts and running ones stop at
            their next epoch as ``timeout``.
        interrupt: the same, set when the user stopped the search: ``interrupted``.
        tickets: a shared int: how many more trials may start (-1: no limit).
    """
    import signal

    # Ctrl-C reaches every process of the terminal's group: the main process stops the
    # workers through ``interrupt``, so that each ends its run cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    _pin(job.slot)
    orphan_aware = StopSignals(stop, interrupt)
    events = EventSink(queue, job.slot.label, job.budget)
    _route_output(events)
    reason = "stopped"
    try:
        from mlsel.metalearn.search.trial import TrialLoop

        loop = TrialLoop(job, events, orphan_aware)
        events.emit(
            WorkerStarted,
            device=job.slot.device,
            pid=os.getpid(),
            cuda_visible=job.slot.cuda_visible,
        )
        reason = _trials(loop, job, orphan_aware, tickets)
    except Exception as exc:  # the worker must report why it died, not vanish
        logger.exception("worker %s failed", job.slot.label)
        reason = f"worker error: {type(exc).__name__}: {exc}"
    finally:
        events.emit(WorkerDone, reason=reason)
