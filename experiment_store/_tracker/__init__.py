"""Import experiment-tracker CSV exports (Weights & Biases, MLflow; one row a run).

The format is found from the header (:mod:`._formats`): a W&B "Export CSV" (``Name``,
``State``, ``Runtime``, with or without ``ID``, plain or ``config.``/``summary.`` columns),
``mlflow.search_runs()`` saved to CSV (``run_id``, ``params.*``, ``metrics.*``, ``tags.*``)
or the MLflow UI's download (``Run ID``, ``Duration``, ``Status``, plain params and
metrics). A :class:`TrackerMapping` may name the columns of each role; known
hyperparameter names become :class:`Config` fields, other hyperparameter columns go to
``Config.extra``, result columns to ``metrics``, and dataset columns such as
``num_classes`` to an ``imported`` :class:`DatasetProfile` holding only what the export
says. Rows that never reported a score are ``failed``, never zero. A run is identified by
the tracker's own identity (:mod:`._identity`), never by the file's name, so re-importing
any export, a slice of it or a superset adds only the runs the store has not seen.
"""

from __future__ import annotations

from pathlib import Path

from mlsel.experiment_store._tracker._formats import CSV_FORMATS, detect_csv_format
from mlsel.experiment_store._tracker._identity import row_hash
from mlsel.experiment_store._tracker._mapping import TrackerMapping
from mlsel.experiment_store._tracker._read import (
    ParsedExport,
    dataset_fingerprint,
    parse_value,
    read_tracker_csv,
)
from mlsel.experiment_store._tracker._write import write_tracker_runs

__all__ = [
    "CSV_FORMATS",
    "ParsedExport",
    "TrackerMapping",
    "dataset_fingerprint",
    "detect_csv_format",
    "is_parquet",
    "parse_value",
    "read_tracker_csv",
    "row_hash",
    "write_tracker_runs",
]


def is_parquet(path: Path) -> bool:
    """Whether ``path`` starts with Parquet's magic bytes (False when it cannot be read)."""
    try:
        with open(path.expanduser(), "rb") as handle:
            return handle.read(4) == b"PAR1"
    except OSError:
        return False
