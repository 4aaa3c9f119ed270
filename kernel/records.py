"""Typed records that flow between mlsel's packages and in and out of the store.

These are the contracts of DESIGN.md: frozen dataclasses, not dicts. ``Dataset`` (items
and splits) is in :mod:`mlsel.kernel.dataset`, ``Suggestion`` in ``mlsel.metalearn``;
what the store keeps of a dataset is its fingerprint and its ``DatasetProfile``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

__all__ = [
    "Config",
    "DatasetProfile",
    "EpochCallback",
    "EpochRecord",
    "RunRecord",
    "RunResult",
]

Task = Literal["classify", "detect"]
RunStatus = Literal["running", "completed", "failed", "pruned", "timeout", "interrupted"]
RunSource = Literal["local", "bundled", "imported"]

Scalar = float | int | str | bool | None


@dataclass(frozen=True)
class DatasetProfile:
    """What the profilers know about one dataset.

    Attributes:
        fingerprint: content hash of the dataset (file names, sizes, labels).
        task: ``classify`` or ``detect``.
        features: meta-feature name -> value. Names are open-ended so new profilers
            need no store migration; NaN means "not measured".
        profiler_version: version of the profiler that computed ``features``.
        name: a human name (usually the folder name).
        path: where the dataset was read from, if local.
        warnings: problems found while reading (corrupt files, leakage, tiny classes).
    """

    fingerprint: str
    task: str
    features: Mapping[str, float]
    profiler_version: str
    name: str = ""
    path: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """One point of the candidate space: an architecture and how to train it.

    ``pretrained`` is the name of the weights used (``"imagenet"``, a file path, ...)
    or ``None`` for training from scratch. ``extra`` keeps hyperparameters the
    candidate space does not name (imported runs carry many), as sorted pairs so the
    record stays hashable.
    """

    backend: str
    arch: str
    pretrained: str | None = "imagenet"
    finetune: str = "head"
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 8
    epochs: int = 10
    image_size: int = 224
    augment: str = "light"
    optimizer: str = "adam"
    schedule: str = "none"
    label_smoothing: float = 0.0
    min_per_class: int = 0
    patience: int = 0
    seed: int = 0
    extra: tuple[tuple[str, Scalar], ...] = ()

    def key(self) -> str:
        """A short stable hash of every field: equal configs share a key."""
        canon = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha1(canon.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``extra`` as a dict)."""
        out = asdict(self)
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys go to ``extra``."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in data.items() if k in names and k != "extra"}
        extra = dict(data.get("extra") or {})
        extra.update({k: v for k, v in data.items() if k not in names})
        return cls(**known, extra=tuple(sorted(extra.items())))

    def to_params(self) -> dict[str, Any]:
        """Flat Optuna-style params: ``model`` is ``backend/arch``, ``pretrained`` a str."""
        params = self.to_dict()
        extra = params.pop("extra")
        params["model"] = f"{params.pop('backend')}/{params.pop('arch')}"
        params["pretrained"] = params["pretrained"] or "none"
        params.update({f"extra.{k}": v for k, v in extra.items()})
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Config:
        """Inverse of :meth:`to_params`; missing params take the defaults."""
        data = {k: v for k, v in params.items() if not k.startswith("extra.")}
        backend, _, arch = str(data.pop("model")).partition("/")
        pretrained = data.get("pretrained", "imagenet")
        data["pretrained"] = None if pretrained in (None, "none") else pretrained
        extra = {k[len("extra.") :]: v for k, v in params.items() if k.startswith("extra.")}
        return cls.from_dict({**data, "backend": backend, "arch": arch, "extra": extra})

    def with_(self, **changes: Any) -> Config:
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of a run's curve. ``score`` is the primary validation score."""

    epoch: int
    train_loss: float | None = None
    val_loss: float | None = None
    score: float | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)


EpochCallback = Callable[[EpochRecord], None]


@dataclass(frozen=True)
class RunResult:
    """The outcome of one training run.

    Attributes:
        status: completed, failed, pruned or timeout.
        score: primary score (classification: macro F1 on validation; detection:
            mAP50-95), ``None`` when the run never reported one.
        metrics: every other metric (accuracy, weighted/macro precision, recall, F1,
            top-5, mAP50, ...).
        confusion: confusion matrix (rows = true class), when measured.
        curve: per-epoch records.
        wall_seconds: wall time of the whole run.
        seconds_per_epoch: mean training seconds per epoch.
        peak_gpu_mb / peak_host_mb: peak memory, when measured.
        hardware: device description (``device``, ``cpu``, ``gpu``, ``gpu_count``, ...).
        versions: library versions (mlsel, torch, ...).
        error: error text of a failed run.
        artifact_dir: folder with the weights, plots and metadata, if any.
    """

    status: str
    score: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    confusion: tuple[tuple[int, ...], ...] | None = None
    curve: tuple[EpochRecord, ...] = ()
    wall_seconds: float | None = None
    seconds_per_epoch: float | None = None
    peak_gpu_mb: float | None = None
    peak_host_mb: float | None = None
    hardware: Mapping[str, str] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    artifact_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict: the confusion matrix as lists, the curve as dicts."""
        return {
            "status": self.status,
            "score": self.score,
            "metrics": dict(self.metrics),
            "confusion": [list(row) for row in self.confusion] if self.confusion else None,
            "curve": [record.to_dict() for record in self.curve],
            "wall_seconds": self.wall_seconds,
            "seconds_per_epoch": self.seconds_per_epoch,
            "peak_gpu_mb": self.peak_gpu_mb,
            "peak_host_mb": self.peak_host_mb,
            "hardware": dict(self.hardware),
            "versions": dict(self.versions),
            "error": self.error,
            "artifact_dir": self.artifact_dir,
        }


@dataclass(frozen=True)
class RunRecord:
    """A run as the store returns it: identity, provenance, config and result."""

    run_id: str
    dataset: str
    source: str
    config: Config
    result: RunResult
    started_at: str | None = None
    finished_at: str | None = None
    import_key: str | None = None

    @property
    def status(self) -> str:
        return self.result.status

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict: identity, provenance, the config and the result."""
        return {
            "run_id": self.run_id,
            "dataset": self.dataset,
            "source": self.source,
            "config": self.config.to_dict(),
            "result": self.result.to_dict(),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "import_key": self.import_key,
        }
