"""What the workers of a search tell the main process: small frozen records.

Every event carries ``worker`` (the slot label, ``cpu`` or ``cuda:1``) and ``time`` (the
search budget's clock when it happened). They cross from the worker processes through a
multiprocessing queue, so they hold only plain values and records.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlsel.kernel.records import Config

__all__ = [
    "EpochEnded",
    "SearchEvent",
    "TrialEnded",
    "TrialSkipped",
    "TrialStarted",
    "WorkerDone",
    "WorkerLog",
    "WorkerStarted",
]


@dataclass(frozen=True, kw_only=True)
class SearchEvent:
    """Base of every event: who said it, and when."""

    worker: str
    time: float


@dataclass(frozen=True, kw_only=True)
class WorkerStarted(SearchEvent):
    """A worker process is up and has opened the study and the store."""

    pid: int
    device: str
    cuda_visible: str


@dataclass(frozen=True, kw_only=True)
class TrialStarted(SearchEvent):
    """A trial's config passed the budget check and starts training."""

    trial: int
    config: Config
    warm: bool
    predicted_seconds: float | None


@dataclass(frozen=True, kw_only=True)
class EpochEnded(SearchEvent):
    """One epoch of a running trial ended (``epoch`` counts from 1)."""

    trial: int
    epoch: int
    epochs: int
    score: float | None
    seconds: float | None


@dataclass(frozen=True, kw_only=True)
class TrialEnded(SearchEvent):
    """A trial ended: ``status`` is the run's (completed, pruned, timeout, failed)."""

    trial: int
    config: Config
    status: str
    score: float | None
    run_id: str | None
    seconds: float | None
    warm: bool
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class TrialSkipped(SearchEvent):
    """A sampled trial was not run: the cost model said it would not fit the time left."""

    trial: int
    arch: str
    predicted_seconds: float
    left: float


@dataclass(frozen=True, kw_only=True)
class WorkerLog(SearchEvent):
    """A line the worker logged (``level`` is the logging level name, or ``OUT``)."""

    level: str
    text: str


@dataclass(frozen=True, kw_only=True)
class WorkerDone(SearchEvent):
    """The worker stopped asking for trials, and why."""

    reason: str
