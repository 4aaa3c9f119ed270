"""Refit the ranker from the whole store, measure it, and activate it only if not worse.

The gate compares leave-one-dataset-out regret@1: against the active ranker's recorded
regret@1 when there is one, else against the rules (what ``suggest`` uses without a
ranker). A ranker kept inactive is still saved and recorded, with the reason.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlsel.kernel.errors import RankerError
from mlsel.metalearn.evaluation import evaluate
from mlsel.metalearn.ranker import RankerModel

__all__ = ["MIN_DATASETS", "RefitReport", "load_active", "refit"]

logger = logging.getLogger(__name__)
MIN_DATASETS = 3
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class RefitReport:
    """What a refit did: the new version, its evaluation, and whether it is active."""

    version: str
    path: str
    rows: int
    n_datasets: int
    evaluation: dict[str, Any]
    activated: bool
    reason: str
    previous: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


def _version() -> str:
    return datetime.now(timezone.utc).strftime("r%Y%m%d-%H%M%S-%f")


def refit(
    store: Any, *, home: str | os.PathLike[str] | None = None, max_folds: int | None = 10
) -> RefitReport:
    """Fit a ranker on every finished run, evaluate it, save and maybe activate it.

    Args:
        store: an open ``Store``.
        home: the mlsel home (the ranker goes under ``home/rankers/<version>/``).
        max_folds: leave-one-dataset-out with at most this many folds (groups of datasets).

    Raises:
        RankerError: fewer than ``MIN_DATASETS`` datasets with finished runs.
    """
    from mlsel.kernel.home import Home

    frame = store.training_frame()
    n_datasets = frame["dataset"].n_unique() if frame.height else 0
    if n_datasets < MIN_DATASETS:
        raise RankerError(
            f"A refit needs finished runs on at least {MIN_DATASETS} datasets; the store has "
            f"{n_datasets}. Run `mlsel run` on more datasets or import runs "
            "(`mlsel store import`)."
        )
    evaluation = evaluate(frame, max_folds=max_folds)
    version = _version()
    folder = Home.resolve(home).ranker(version)
    RankerModel().fit(frame).save(folder)
    record = evaluation.to_dict()
    regret = record["summary"]["ranker"]["regret@1"]
    active = store.active_ranker()
    if active is not None:
        previous = _regret(active.evaluation)
        against = f"the active ranker {active.version}"
    else:
        previous = record["summary"]["rules"]["regret@1"]
        against = "the rules (no ranker is active)"
    activated = previous is None or regret <= previous + _TOLERANCE
    if activated:
        reason = f"regret@1 {regret:.3f} is not worse than {against} ({_fmt(previous)})"
    else:
        reason = f"kept inactive: regret@1 {regret:.3f} is worse than {against} ({_fmt(previous)})"
    record["regret@1"] = regret
    store.save_ranker(version, str(folder), rows=frame.height, evaluation=record, active=activated)
    logger.info("refit %s: %s", version, reason)
    return RefitReport(
        version=version,
        path=str(folder),
        rows=frame.height,
        n_datasets=n_datasets,
        evaluation=record,
        activated=activated,
        reason=reason,
        previous=active.version if active else None,
    )


def _regret(evaluation: Any) -> float | None:
    value = evaluation.get("regret@1") if hasattr(evaluation, "get") else None
    return float(value) if value is not None else None


def _fmt(value: float | None) -> str:
    return "none recorded" if value is None else f"{value:.3f}"


def load_active(store: Any) -> tuple[RankerModel, Any] | None:
    """The active ranker and its store entry, or ``None`` when there is none."""
    entry = store.active_ranker()
    if entry is None:
        return None
    return RankerModel.load(Path(entry.path)), entry
