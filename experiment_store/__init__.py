"""The experiment store: every training run, its dataset's profile, and the rankers.

``Store.open()`` opens ``$MLSEL_HOME/experiments.duckdb``; see :mod:`.store` for the
concurrency and crash guarantees. Importing this package is cheap: DuckDB, Polars and
PyArrow load on first use.
"""

from __future__ import annotations

from mlsel.experiment_store._exchange import ImportReport
from mlsel.experiment_store._rankers import RankerEntry
from mlsel.experiment_store._tracker import TrackerMapping
from mlsel.experiment_store.errors import (
    ConfigError,
    DatasetError,
    MlselError,
    RankerError,
    StoreError,
    StoreFormatError,
    TrainingError,
    WeightsUnavailableError,
)
from mlsel.experiment_store.records import (
    AUGMENT_PRESETS,
    BACKENDS,
    FINETUNE_MODES,
    FINISHED_STATUSES,
    RUN_SOURCES,
    RUN_STATUSES,
    TASKS,
    Config,
    DatasetProfile,
    EpochRecord,
    RunRecord,
    RunResult,
)
from mlsel.experiment_store.store import Store

__all__ = [
    "AUGMENT_PRESETS",
    "BACKENDS",
    "FINETUNE_MODES",
    "FINISHED_STATUSES",
    "RUN_SOURCES",
    "RUN_STATUSES",
    "TASKS",
    "Config",
    "ConfigError",
    "DatasetError",
    "DatasetProfile",
    "EpochRecord",
    "ImportReport",
    "MlselError",
    "RankerEntry",
    "RankerError",
    "RunRecord",
    "RunResult",
    "Store",
    "StoreError",
    "StoreFormatError",
    "TrackerMapping",
    "TrainingError",
    "WeightsUnavailableError",
]
