"""Refit the ranker from the whole store, measure it, and activate it only if not worse.

The gate (:mod:`mlsel.metalearn._gate`) scores the candidate and the active ranker on the
same leave-one-dataset-out folds of today's store: the active ranker's recipe refitted on
each fold as the candidate is, or, when its recipe is unknown, the ranker applied to the
datasets it never saw; with no active ranker, the rules. The candidate activates when its
regret@1 there is not worse. A ranker kept inactive is still saved and recorded, with the
reason.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlsel.kernel.errors import RankerError
from mlsel.metalearn._gate import ActivePlan, plan_active, recipe_scorer, side
from mlsel.metalearn.baselines import SCORERS
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
    store: Any,
    *,
    home: str | os.PathLike[str] | None = None,
    max_folds: int | None = 10,
    ranker: RankerModel | None = None,
) -> RefitReport:
    """Fit a ranker on every finished run, evaluate it, save and maybe activate it.

    Args:
        store: an open ``Store``.
        home: the mlsel home (the ranker goes under ``home/rankers/<version>/``).
        max_folds: leave-one-dataset-out with at most this many folds (groups of datasets).
        ranker: the candidate's recipe (an unfitted :class:`RankerModel`; default settings
            when ``None``).

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
    params = (ranker or RankerModel()).get_params()
    entry = store.active_ranker()
    plan = plan_active(store, entry)
    same = plan.same_recipe_as(RankerModel(**params), frame)
    scorers = {**SCORERS, "ranker": recipe_scorer(params)}
    if plan.scorer is not None and not same:
        scorers["active"] = plan.scorer
    evaluation = evaluate(frame, scorers=scorers, max_folds=max_folds)
    rows = [dict(r) for r in evaluation.per_dataset]
    if same:  # the same recipe on the same folds: the same fits, not run twice
        for row in rows:
            row["active"] = row["ranker"]
    record = evaluation.to_dict()
    record["summary"].pop("active", None)
    compared, how, note = _compared(rows, plan)
    candidate = side(compared, "ranker")
    active = side(compared, "rules" if how == "rules" else "active")
    activated = not compared or candidate["regret@1"] <= active["regret@1"] + _TOLERANCE
    against = _against(plan, how, note, len(compared))
    if not compared:
        reason = "no held-out dataset to compare on: activated"
    elif activated:
        reason = (
            f"regret@1 {candidate['regret@1']:.3f} is not worse than {against} "
            f"({active['regret@1']:.3f}) on the same {len(compared)} held-out datasets"
        )
    else:
        reason = (
            f"kept inactive: regret@1 {candidate['regret@1']:.3f} is worse than {against} "
            f"({active['regret@1']:.3f}) on the same {len(compared)} held-out datasets"
        )
    record["candidate"] = candidate
    record["active"] = {"version": plan.version, "scored_by": how, "note": note, **active}
    record["compared_on"] = _folds_record(compared, frame)
    record["regret@1"] = candidate["regret@1"]
    version = _version()
    folder = Home.resolve(home).ranker(version)
    RankerModel(**params).fit(frame).save(folder)
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
        previous=entry.version if entry else None,
    )


def _compared(
    rows: list[dict[str, Any]], plan: ActivePlan
) -> tuple[list[dict[str, Any]], str, str]:
    """The per-dataset rows both sides are compared on, how the active side is scored, and
    a note saying so."""
    if plan.how != "applied":
        return rows, plan.how, plan.note
    unseen = [r for r in rows if str(r["dataset"]) not in plan.seen]
    if unseen:
        return unseen, "applied", plan.note
    return rows, "rules", "the active ranker saw every held-out dataset: compared with the rules"


def _against(plan: ActivePlan, how: str, note: str, n: int) -> str:
    if how == "refitted":
        return f"the active ranker {plan.version} (its recipe refitted)"
    if how == "applied":
        return f"the active ranker {plan.version} (applied to the {n} datasets it never saw)"
    return f"the rules ({note})"


def _folds_record(rows: list[dict[str, Any]], frame: Any) -> dict[str, Any]:
    """Which held-out datasets, fold by fold, the two sides were compared on."""
    names: dict[str, Any] = {}
    if "dataset_name" in frame.columns:
        pairs = frame.select("dataset", "dataset_name").unique(subset="dataset")
        names = dict(zip(pairs["dataset"].to_list(), pairs["dataset_name"].to_list(), strict=True))
    folds: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        fp = str(row["dataset"])
        folds.setdefault(int(row["fold"]), []).append({"dataset": fp, "name": names.get(fp)})
    return {
        "n_datasets": len(rows),
        "n_folds": len(folds),
        "folds": [folds[k] for k in sorted(folds)],
    }


def load_active(store: Any) -> tuple[RankerModel, Any] | None:
    """The active ranker and its store entry, or ``None`` when there is none."""
    entry = store.active_ranker()
    if entry is None:
        return None
    return RankerModel.load(Path(entry.path)), entry
