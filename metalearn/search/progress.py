"""What a search has done so far, folded from the workers' events (the live view's model)."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlsel.kernel.records import Config
from mlsel.metalearn.search.events import (
    EpochEnded,
    SearchEvent,
    TrialEnded,
    TrialSkipped,
    TrialStarted,
    WorkerDone,
    WorkerLog,
    WorkerStarted,
)

if TYPE_CHECKING:
    from mlsel.metalearn.search.leaderboard import LeaderboardRow

__all__ = ["SearchProgress", "WorkerState"]


@dataclass
class WorkerState:
    """One worker as the live view shows it."""

    label: str
    pid: int | None = None
    trial: int | None = None
    arch: str = ""
    epoch: int = 0
    epochs: int = 0
    score: float | None = None
    done: str | None = None  # why the worker ended, once it has


@dataclass
class SearchProgress:
    """Counts, best so far and per-worker state; :meth:`update` takes one event.

    Attributes:
        started / finished: trials started and finished in this command.
        statuses: finished trials by status (completed, pruned, timeout, failed).
        skipped: trials not run because the cost model said they would not fit.
        best_score / best_trial / best_config: the best score seen so far (completed
            trials; a stopped trial's partial score counts only while none completed).
        history: (seconds since start, best completed score) each time it improved.
        ended: (seconds since start, trial, status, score, warm) of every finished trial.
        logs: the last lines the workers wrote.
    """

    started_at: float
    started: int = 0
    finished: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    warm_finished: int = 0
    best_score: float | None = None
    best_trial: int | None = None
    best_config: Config | None = None
    best_completed: bool = False
    history: list[tuple[float, float]] = field(default_factory=list)
    ended: list[tuple[float, int, str, float | None, bool]] = field(default_factory=list)
    workers: dict[str, WorkerState] = field(default_factory=dict)
    logs: deque[str] = field(default_factory=lambda: deque(maxlen=8))

    def worker(self, label: str) -> WorkerState:
        return self.workers.setdefault(label, WorkerState(label))

    def seed_best(self, rows: Sequence[LeaderboardRow]) -> None:
        """Start from the best of earlier trials (a resumed search): the progress line's
        "best" counts them, while the counts stay those of this command."""
        best = next((r for r in rows if r.status == "completed" and r.score is not None), None)
        if best is not None:
            self.best_score, self.best_trial = best.score, best.trial
            self.best_config, self.best_completed = Config.from_dict(best.config), True

    def update(self, event: SearchEvent) -> None:
        """Fold one worker event into the progress."""
        state = self.worker(event.worker)
        if isinstance(event, WorkerStarted):
            state.pid = event.pid
        elif isinstance(event, TrialStarted):
            self.started += 1
            state.trial, state.arch = event.trial, event.config.arch
            state.epoch, state.epochs, state.score = 0, event.config.epochs, None
        elif isinstance(event, EpochEnded):
            state.epoch, state.score = event.epoch, event.score
        elif isinstance(event, TrialEnded):
            self._finish(event, state)
        elif isinstance(event, TrialSkipped):
            self.skipped += 1
        elif isinstance(event, WorkerLog):
            self.logs.append(f"[{event.worker}] {event.text}")
        elif isinstance(event, WorkerDone):
            state.done, state.trial = event.reason, None

    def _finish(self, event: TrialEnded, state: WorkerState) -> None:
        self.finished += 1
        self.statuses[event.status] += 1
        self.warm_finished += event.warm
        state.trial = None
        score, completed = event.score, event.status == "completed"
        elapsed = event.time - self.started_at
        self.ended.append((elapsed, event.trial, event.status, score, event.warm))
        if completed and score is not None and (not self.history or score > self.history[-1][1]):
            self.history.append((elapsed, float(score)))
        if score is None or (self.best_completed and not completed):
            return
        better = self.best_score is None or score > self.best_score
        if better or (completed and not self.best_completed):
            self.best_score, self.best_trial = float(score), event.trial
            self.best_config, self.best_completed = event.config, completed

    @property
    def running(self) -> int:
        return sum(1 for w in self.workers.values() if w.trial is not None)

    @property
    def alive(self) -> int:
        return sum(1 for w in self.workers.values() if w.done is None)
