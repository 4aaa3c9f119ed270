"""Import experiment-tracker CSV exports (Weights & Biases / MLflow style, one row a run).

A :class:`TrackerMapping` says which columns are the run id, dataset, architecture, score
and status; known hyperparameter names become :class:`Config` fields, other hyperparameter
columns go to ``Config.extra``, result columns to ``metrics``, and dataset columns such as
``num_classes`` to an ``imported`` :class:`DatasetProfile`. The defaults fit a W&B export
of timm fine-tuning runs (Quick-Tune's meta-data). Rows that never reported a score are
``failed``, never zero; re-importing the same file adds nothing (each run's import key is
the file name plus the tracker's run id).
"""

from __future__ import annotations

from mlsel.experiment_store._tracker._mapping import TrackerMapping
from mlsel.experiment_store._tracker._read import (
    ParsedExport,
    dataset_fingerprint,
    parse_value,
    read_tracker_csv,
)
from mlsel.experiment_store._tracker._write import write_tracker_runs

__all__ = [
    "ParsedExport",
    "TrackerMapping",
    "dataset_fingerprint",
    "parse_value",
    "read_tracker_csv",
    "write_tracker_runs",
]
