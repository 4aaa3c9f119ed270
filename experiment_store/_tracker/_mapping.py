"""Which columns of a tracker export mean what: :class:`TrackerMapping` and its defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["TrackerMapping"]

_KNOWN_HYPERPARAMS = {
    "lr": "lr",
    "batch_size": "batch_size",
    "weight_decay": "weight_decay",
    "opt": "optimizer",
    "sched": "schedule",
    "smoothing": "label_smoothing",
    "epochs": "epochs",
}
# Tracker bookkeeping, not hyperparameters (W&B and MLflow run-table columns; timm's
# `experiment` is the run name again).
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
)


@dataclass(frozen=True)
class TrackerMapping:
    """Which columns of a tracker CSV mean what. Defaults fit a W&B export of timm runs.

    Attributes:
        run_id_col / dataset_col / arch_col / score_col: required columns.
        score_scale: factor turning the score column into mlsel's 0..1 score (0.01 for %).
        status_col: the run state column (None: every row with a score is finished);
            ``finished_values`` are its values meaning the run finished (any case).
        seconds_per_epoch_cols: columns summed into seconds per epoch (when present).
        wall_seconds_col / started_col / finished_col: run timing (when present).
        feature_cols: dataset column -> meta-feature name of the ``imported`` profile.
        hyperparams: column -> Config field; other hyperparameter columns go to ``extra``.
        metric_cols / metric_prefixes: columns kept as metrics, not hyperparameters.
        ignore_cols: tracker bookkeeping columns to leave out.
        hardware_cols: column -> hardware key.
        backend / pretrained: the Config backend and weights of every imported run
            (``pretrained_col`` overrides the latter per row when set).
        task: the task of the imported datasets.
        drop_constant: leave out of ``extra`` the columns with one value in the whole file.
    """

    run_id_col: str = "ID"
    dataset_col: str = "dataset"
    arch_col: str = "model"
    score_col: str = "eval_top1"
    score_scale: float = 0.01
    status_col: str | None = "State"
    finished_values: tuple[str, ...] = ("finished",)
    seconds_per_epoch_cols: tuple[str, ...] = ("train_time", "eval_time")
    wall_seconds_col: str | None = "Runtime"
    started_col: str | None = "Created"
    finished_col: str | None = "End Time"
    feature_cols: Mapping[str, str] = field(default_factory=lambda: {"num_classes": "num_classes"})
    hyperparams: Mapping[str, str] = field(default_factory=lambda: dict(_KNOWN_HYPERPARAMS))
    metric_cols: tuple[str, ...] = ("epoch",)
    metric_prefixes: tuple[str, ...] = ("eval_", "train_", "val_", "test_", "metrics.")
    ignore_cols: tuple[str, ...] = _TRACKER_COLUMNS
    hardware_cols: Mapping[str, str] = field(
        default_factory=lambda: {"Hostname": "host", "GPU Type": "gpu", "GPU Count": "gpu_count"}
    )
    backend: str = "external"
    pretrained: str | None = "imagenet"
    pretrained_col: str | None = None
    task: str = "classify"
    drop_constant: bool = True
