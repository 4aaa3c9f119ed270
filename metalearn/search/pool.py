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
from collections.abc import Callable, Sequence
from typing import Any

from mlsel.metalearn.search.budget import Budget
from mlsel.metalearn.search.events import SearchEvent, TrialEnded, WorkerDone
from mlsel.metalearn.search.progress import SearchProgress
from mlsel.metalearn.search.workers import WorkerJob, run_worker

__all__ = ["EventHook", "WorkerPool"]

EventHook = Callable[[SearchProgress, "SearchEvent | None"], None]

logger = logging.getLogger(__name__)

TICK_S = 0.25


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
        self.stop = ctx.Event()
        self.tickets = ctx.Value("i", -1 if max_trials is None else max(0, max_trials))
        self.processes = [
            ctx.Process(
                target=run_worker,
                name=f"mlsel-worker-{job.slot.label}",
                args=(job, self.queue, self.stop, self.tickets),
            )
            for job in self.jobs
        ]
        self.stop_reason = ""

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

    def run(self, progress: SearchProgress, on_event: EventHook | None = None) -> list[int]:
        """Loop until every worker is done. Returns the trials running in killed workers."""
        pairs = zip(self.jobs, self.processes, strict=True)
        labels = {job.slot.label: process for job, process in pairs}
        done: set[str] = set()
        killed_trials: list[int] = []
        try:
            while len(done) < len(labels):
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
                now = self.budget.now()
                if self.budget.expired(now) and not self.stop.is_set():
                    self.halt("budget spent")
                for label, process in labels.items():
                    if label not in done and not process.is_alive() and self.queue.empty():
                        logger.warning(
                            "worker %s ended without a word (exit code %s)", label, process.exitcode
                        )
                        progress.worker(label).done = f"died (exit code {process.exitcode})"
                        done.add(label)
                if now >= self.budget.kill_at:
                    killed_trials = self._kill(labels, done, progress)
                    break
        except KeyboardInterrupt:
            self.halt("interrupted")
            self._kill(labels, done, progress)
            raise
        finally:
            self._drain(progress, on_event)
            for process in self.processes:
                process.join(timeout=5)
        if not self.stop_reason:
            reasons = {w.done for w in progress.workers.values() if w.done}
            self.stop_reason = "; ".join(sorted(reasons)) or "done"
        return killed_trials

    def _kill(self, labels: dict[str, Any], done: set[str], progress: SearchProgress) -> list[int]:
        trials = []
        for label, process in labels.items():
            if label in done or not process.is_alive():
                continue
            state = progress.worker(label)
            logger.warning("worker %s did not stop in time: terminating it", label)
            if state.trial is not None:
                trials.append(state.trial)
            process.terminate()
            state.done, state.trial = "terminated at the deadline", None
            done.add(label)
        return trials

    def _drain(self, progress: SearchProgress, on_event: EventHook | None) -> None:
        while True:
            try:
                event = self.queue.get(timeout=0.05)
            except (queue_module.Empty, OSError, ValueError):
                return
            self._handle(event, progress)
            if on_event is not None:
                on_event(progress, event)
