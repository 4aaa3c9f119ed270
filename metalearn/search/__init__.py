"""The search of ``mlsel run``: warm-started Optuna trials inside a wall-clock budget.

``run_search(dataset_path, SearchSettings(...))`` is the entry point. The pieces, one
concept each: :mod:`budget` (when to stop), :mod:`devices` (``--gpus`` into worker
slots), :mod:`study` (Optuna storage, samplers, pruners, warm start), :mod:`trainer`
(the :class:`Trainer` protocol a search trains through), :mod:`workers` and :mod:`trial`
(what runs in each worker process), :mod:`events` (what workers tell the main process),
:mod:`pool` (the main process's loop over the workers), :mod:`progress` (the live
view's model), :mod:`leaderboard`.
Nothing here imports optuna or torch at import time.
"""

from __future__ import annotations

from mlsel.metalearn.search.budget import Budget, Clock
from mlsel.metalearn.search.devices import DeviceSlot, parse_gpus
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
from mlsel.metalearn.search.leaderboard import LeaderboardRow, export_best, leaderboard
from mlsel.metalearn.search.progress import SearchProgress, WorkerState
from mlsel.metalearn.search.search import SearchReport, SearchSettings, run_search
from mlsel.metalearn.search.study import PRUNERS, SAMPLERS
from mlsel.metalearn.search.trainer import Trainer

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "Budget",
    "Clock",
    "DeviceSlot",
    "EpochEnded",
    "LeaderboardRow",
    "SearchEvent",
    "SearchProgress",
    "SearchReport",
    "SearchSettings",
    "Trainer",
    "TrialEnded",
    "TrialSkipped",
    "TrialStarted",
    "WorkerDone",
    "WorkerLog",
    "WorkerStarted",
    "WorkerState",
    "export_best",
    "leaderboard",
    "parse_gpus",
    "run_search",
]
