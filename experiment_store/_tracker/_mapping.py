"""Which columns of a tracker export mean what: :class:`TrackerMapping` and its defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ROLE_CANDIDATES", "TrackerMapping"]

_KNOWN_HYPERPARAMS = {
    "lr": "lr",
    "learning_rate": "lr",
    "batch_size": "batch_size",
    "weight_decay": "weight_decay",
    "opt": "optimizer",
    "optimizer": "optimizer",
    "sched": "schedule",
    "scheduler": "schedule",
    "smoothing": "label_smoothing",
    "label_smoothing": "label_smoothing",
    "epochs": "epochs",
}
# Tracker bookkeeping, not hyperparameters (W&B and MLflow run-table columns; timm's
# `experiment` is the run name again). Compared by logical name (``config.``, ``params.``,
# ... prefixes removed) and case-insensitively.
_TRACKER_COLUMNS = (
    "Name",
    "Runtime",
    "Hostname",
    "Notes",
    "GPU Type",
    "GPU Count",
    "Tags",
    "ID",
    "State",
    "User",
    "Group",
    "Job Type",
    "Created",
    "Updated",
    "End Time",
    "Sweep",
    "Description",
    "Commit",
    "GitHub",
    "experiment",
    "Run ID",
    "Status",
    "Start Time",
    "Duration",
    "Source Type",
    "Source Name",
    "Source Version",
    "Lifecycle Stage",
    "run_id",
    "experiment_id",
    "artifact_uri",
    "start_time",
    "end_time",
    "project",
    "project_name",
    "entity",
)

# role -> logical column names that carry it, most specific first (case-insensitive). The
# tracker's own run id comes before its run name: see ``_identity``.
ROLE_CANDIDATES: dict[str, tuple[str, ...]] = {
    "run_id": ("ID", "run_id", "Run ID", "run_uuid", "id"),
    "run_name": ("Name", "run_name", "mlflow.runName", "display_name", "name"),
    "dataset": ("dataset", "dataset_name", "data", "data_set", "dataset_id"),
    "arch": ("model", "arch", "architecture", "model_name", "backbone", "net"),
    "score": (
        "eval_top1",
        "val_top1",
        "top1",
        "eval_accuracy",
        "val_accuracy",
        "val_acc",
        "accuracy",
        "acc",
    ),
    "status": ("State", "status", "Status", "state"),
    "wall_seconds": ("Runtime", "_runtime", "Duration", "duration"),
    "started": ("Created", "start_time", "Start Time", "created_at"),
    "finished": ("End Time", "end_time"),
    "scope": ("entity", "project", "project_name", "experiment_id", "Experiment ID"),
}


@dataclass(frozen=True)
class TrackerMapping:
    """Which columns of a tracker CSV mean what. ``None`` means: found from the header.

    Every column is named by its logical name: the header with a ``config.``, ``summary.``,
    ``params.``, ``metrics.`` or ``tags.`` prefix removed (a W&B API export's
    ``config.lr`` and an MLflow ``params.lr`` are both ``lr``); the full header works too.

    Attributes:
        run_id_col: the tracker's run id (default: the first of ``ROLE_CANDIDATES``
            present; none found: the run name, then a hash of the row identify a run).
        dataset_col / arch_col / score_col: required columns (default: found by name).
        score_scale: factor turning the score into mlsel's 0..1 score (default: 0.01 for a
            ``top1``/``top5`` score or one with values above 1, else 1).
        status_col: the run state column (default: found; none: every row with a score
            is finished); ``finished_values`` mean finished, ``running_values`` still
            running (skipped, so a later export imports the finished run), any case.
        seconds_per_epoch_cols: columns summed into seconds per epoch (when present).
        wall_seconds_col / started_col / finished_col: run timing (default: found).
        feature_cols: dataset column -> meta-feature (profilers' names) of the
            ``imported`` profile; only these, never guessed values.
        hyperparams: column -> Config field; other hyperparameter columns go to ``extra``.
        metric_cols / metric_prefixes / metric_suffixes: columns kept as metrics, not
            hyperparameters (``summary.``/``metrics.`` columns always are; a plain one
            whose name says metric only when its values are numbers: the MLflow UI's
            download and W&B's do not say which columns are metrics).
        ignore_cols: tracker bookkeeping columns to leave out.
        hardware_cols: column -> hardware key.
        backend / pretrained: the Config backend and weights of every imported run
            (``pretrained_col`` overrides the latter per row when set).
        task: the task of the imported datasets.
        drop_constant: leave out of ``extra`` the columns with one value in the whole file.
    """

    run_id_col: str | None = None
    dataset_col: str | None = None
    arch_col: str | None = None
    score_col: str | None = None
    score_scale: float | None = None
    status_col: str | None = None
    finished_values: tuple[str, ...] = ("finished",)
    running_values: tuple[str, ...] = ("running", "scheduled", "pending", "preempting")
    seconds_per_epoch_cols: tuple[str, ...] = ("train_time", "eval_time")
    wall_seconds_col: str | None = None
    started_col: str | None = None
    finished_col: str | None = None
    feature_cols: Mapping[str, str] = field(
        default_factory=lambda: {
            "num_classes": "n_classes",
            "n_classes": "n_classes",
            "num_images": "n_images",
            "n_images": "n_images",
            "num_train": "n_train",
            "n_train": "n_train",
        }
    )
    hyperparams: Mapping[str, str] = field(default_factory=lambda: dict(_KNOWN_HYPERPARAMS))
    metric_cols: tuple[str, ...] = (
        "epoch",
        "loss",
        "accuracy",
        "acc",
        "f1",
        "auc",
        "precision",
        "recall",
        "top1",
        "top5",
    )
    metric_prefixes: tuple[str, ...] = ("eval_", "train_", "val_", "test_", "best_")
    metric_suffixes: tuple[str, ...] = (
        "_loss",
        "_acc",
        "_accuracy",
        "_f1",
        "_auc",
        "_top1",
        "_top5",
    )
    ignore_cols: tuple[str, ...] = _TRACKER_COLUMNS
    hardware_cols: Mapping[str, str] = field(
        default_factory=lambda: {"Hostname": "host", "GPU Type": "gpu", "GPU Count": "gpu_count"}
    )
    backend: str = "external"
    pretrained: str | None = "imagenet"
    pretrained_col: str | None = None
    task: str = "classify"
    drop_constant: bool = True
