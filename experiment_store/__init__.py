"""The experiment store: every training run, its dataset's profile, the rankers,
the model registry and the prediction log.

``Store.open()`` opens ``$MLSEL_HOME/experiments.duckdb``; see :mod:`.store` for the
concurrency and crash guarantees. The records it takes and returns (``Config``,
``RunResult``, ...) and its errors live in :mod:`mlsel.kernel`. Importing this package is
cheap: DuckDB, Polars and PyArrow load on first use.
"""

from __future__ import annotations

from mlsel.experiment_store._exchange import ImportReport
from mlsel.experiment_store._predictions import PredictionRow
from mlsel.experiment_store._rankers import RankerEntry
from mlsel.experiment_store._registry import CHAMPION, DatasetVersion, ModelVersion, Registry
from mlsel.experiment_store._tracker import TrackerMapping
from mlsel.experiment_store.store import Store

__all__ = [
    "CHAMPION",
    "DatasetVersion",
    "ImportReport",
    "ModelVersion",
    "PredictionRow",
    "RankerEntry",
    "Registry",
    "Store",
    "TrackerMapping",
]
