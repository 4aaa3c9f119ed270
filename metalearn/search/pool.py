"""The worker processes of a search and the main process's event loop over them.

Workers are spawned (not forked: torch and CUDA must start fresh in each, pinned by
``CUDA_VISIBLE_DEVICES``) and are not daemons, since a trainer may start data-loader
processes of its own. The loop ends when every worker has said it is done; one that
neither stops nor ends by the budget's ``kill_at`` is terminated, and its running trial
closed as failed in the study.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue as queue_module
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mlsel.metalearn.search.budget import Budget
from mlsel.metalearn.search.events import SearchEvent, TrialEnded, WorkerDone
from mlsel.metalearn.search.progress import SearchProgress
from mlsel.metalearn.search.workers import WorkerJob, run_worker

__all__ = ["EventHook", "KilledTrial", "WorkerPool"]

EventHook = Callable[[SearchProgress, "SearchEvent | None"], None]

logger = logging.getLogger(__name__)

TICK_S = 0.25
GRACE_S = 10.0  # how long interrupted workers may take to end their running epoch


@dataclass(frozen=True)
class KilledTrial:
    """A worker terminated by the main process, and the trial it was running (if any)."""

    trial: int | None
    pid: int | None
    status: str  # timeout (the deadline) or interrupted (the user)


class WorkerPool:
    """Start workers, feed their events to a :class:`SearchProgress`, stop them on time.

    Args:
        jobs: one job per worker.
        budget: the search's budget.
        max_trials: trials the workers may still start (``None``: no limit).
        target: stop when a trial completes with at least this score.
    """

    def __init__(
        self,
        jobs: Sequence[WorkerJob],
        budget: Budget,
        *,
        max_trials: int | None,
        target: float | None,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.jobs, self.budget, self.target = list(jobs), budget, target
        self.queue = ctx.Queue()
        self.stop, self.interrupt = ctx.Event(), ctx.Event()
        self.tickets = ctx.Value("i", -1 if max_trials is None else max(0, max_trials))
        self.processes = [
            ctx.Process(
                target=run_worker,
                name=f"mlsel-worker-{job.slot.label}",
                args=(job, self.queue, self.stop, self.interrupt, self.tickets),
            )
            for job in self.jobs
        ]
        self.stop_reason = ""
        self.interrupted = False
        self.lost: list[KilledTrial] = []  # workers that died on their own (a kill -9)

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def halt(self, reason: str) -> None:
        """Stop the workers (a worker reaching the target stops them itself first)."""
        self.stop_reason = self.stop_reason or reason
        self.stop.set()

    def _handle(self, event: SearchEvent, progress: SearchProgress) -> None:
        progress.update(event)
        if (
            self.target is not None
            and isinstance(event, TrialEnded)
            and event.status == "completed"
            and event.score is not None
            and event.score >= self.target
        ):
            self.halt(f"target {self.target:g} reached by trial {event.trial}")

    def run(self, progress: SearchProgress, on_event: EventHook | None = None) -> list[KilledTrial]:
        """Loop until every worker is done; returns the trials of the workers it terminated
        and of those that died on their own.

        A ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM turned into one by the caller) stops
        the workers: each ends its running trial as ``interrupted`` at its next epoch, and
        those still busy after :data:`GRACE_S` seconds (or at a second interrupt) are
        terminated. The loop then returns as usual, with :attr:`interrupted` set.
        """
        pairs = zip(self.jobs, self.processes, strict=True)
        labels = {job.slot.label: process for job, process in pairs}
        done: set[str] = set()
        killed: list[KilledTrial] = []
        grace_until: float | None = None
        try:
            while len(done) < len(labels):
                try:
                    self._tick(labels, done, progress, on_event)
                except KeyboardInterrupt:
                    if grace_until is not None:  # a second Ctrl-C: no more waiting
                        raise
                    self.interrupted = True
                    self.stop_reason = "interrupted"
                    self.interrupt.set()
                    grace_until = time.monotonic() + GRACE_S
                    logger.warning("interrupted: stopping the workers at their next epoch")
                    continue
                if grace_until is not None and time.monotonic() >= grace_until:
                    killed = self._kill(labels, done, progress, "interrupted")
                    break
                if self.budget.now() >= self.budget.kill_at:
                    killed = self._kill(labels, done, progress, "timeout")
                    break
        except KeyboardInterrupt:
            killed = self._kill(labels, done, progress, "interrupted")
        finally:
            self._drain(progress, on_event)
            for process in self.processes:
                process.join(timeout=5)
        if not self.stop_reason:
            reasons = {w.done for w in progress.workers.values() if w.done}
            self.stop_reason = "; ".join(sorted(reasons)) or "done"
        return killed + self.lost

    def _tick(
        self,
        labels: dict[str, Any],
        done: set[str],
        progress: SearchProgress,
        on_event: EventHook | None,
    ) -> None:
        """Take one event (or wait a tick), and notice the budget and dead workers."""
        try:
            event = self.queue.get(timeout=TICK_S)
        except queue_module.Empty:
            event = None
        if event is not None:
            self._handle(event, progress)
            if isinstance(event, WorkerDone):
                done.add(event.worker)
        if on_event is not None:
            on_event(progress, event)
        if self.budget.expired() and not self.stop.is_set():
            self.halt("budget spent")
        for label, process in labels.items():
            if label not in done and not process.is_alive() and self.queue.empty():
                logger.warning(
                    "worker %s ended without a word (exit code %s)", label, process.exitcode
                )
                state = progress.worker(label)
                self.lost.append(KilledTrial(state.trial, process.pid, "interrupted"))
                state.done, state.trial = f"died (exit code {process.exitcode})", None
                done.add(label)

    def _kill(
        self, labels: dict[str, Any], done: set[str], progress: SearchProgress, status: str
    ) -> list[KilledTrial]:
        killed = []
        for label, process in labels.items():
            if label in done or not process.is_alive():
                continue
            state = progress.worker(label)
            logger.warning("worker %s did not stop in time: terminating it", label)
            process.terminate()
            process.join(timeout=10)
            killed.append(KilledTrial(state.trial, process.pid, status))
            reason = "at the deadline" if status == "timeout" else "after the interrupt"
            state.done, state.trial = f"terminated {reason}", None
            done.add(label)
        return killed

    def _drain(self, progress: SearchProgress, on_event: EventHook | None) -> None:
        while True:
            try:
                event = self.queue.get(timeout=0.05)
            except (queue_module.Empty, OSError, ValueError):
                return
            self._handle(event, progress)
            if on_event is not None:
                on_event(progress, event)
