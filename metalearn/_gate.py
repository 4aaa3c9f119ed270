"""The refit gate: the candidate and the active ranker measured on the same held-out data.

A recorded figure of the active ranker was measured on the store of its day; comparing it
with the candidate's figure on today's store compares two different data sets, and new
experience can never win that. So the gate scores both on today's leave-one-dataset-out
folds:

- ``refitted``: the active ranker's recipe (its saved parameters and the profile features
  it used) is fitted again on each fold's training datasets, as the candidate is;
- ``applied``: a ranker whose recipe is unknown (its files do not say how it was fitted)
  is applied as it is, on the datasets it never saw only, and the candidate's held-out
  figures are taken on those same datasets;
- ``rules``: with no active ranker (or none that loads, or no dataset it never saw) the
  candidate is compared with the rules, which is what ``suggest`` would use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlsel.kernel.errors import RankerError
from mlsel.metalearn.ranker import RankerModel

__all__ = ["ActivePlan", "plan_active", "recipe_scorer", "restricted", "side"]

logger = logging.getLogger(__name__)
GATE_METRICS = ("regret@1", "regret@3", "ndcg@5")
Scorer = Callable[[Any, Any], np.ndarray]


def restricted(frame: Any, meta_features: list[str] | None) -> Any:
    """``frame`` with exactly the profile features ``meta_features`` (missing ones null)."""
    import polars as pl

    if meta_features is None:
        return frame
    keep = set(meta_features)
    frame = frame.drop([c for c in frame.columns if c.startswith("feat_") and c not in keep])
    missing = [c for c in meta_features if c not in frame.columns]
    return frame.with_columns([pl.lit(None, dtype=pl.Float64).alias(c) for c in missing])


def recipe_scorer(params: Mapping[str, Any], meta_features: list[str] | None = None) -> Scorer:
    """A scorer that fits ``RankerModel(**params)`` on the training datasets of each fold,
    seeing only the profile features ``meta_features`` (all when ``None``)."""

    def scorer(train: Any, test: Any) -> np.ndarray:
        model = RankerModel(**params).fit(restricted(train, meta_features))
        return model.predict(restricted(test, meta_features))

    return scorer


@dataclass(frozen=True)
class ActivePlan:
    """How the gate scores the active side: ``refitted``, ``applied`` or ``rules``."""

    how: str
    version: str | None = None
    scorer: Scorer | None = None
    params: Mapping[str, Any] | None = None
    meta_features: list[str] | None = None
    seen: frozenset[str] = field(default_factory=frozenset)
    note: str = ""

    def same_recipe_as(self, candidate: RankerModel, frame: Any) -> bool:
        """Whether refitting this recipe would repeat the candidate's fits exactly."""
        feats = sorted(c for c in frame.columns if c.startswith("feat_"))
        return (
            self.how == "refitted"
            and dict(self.params or {}) == candidate.get_params()
            and sorted(self.meta_features or []) == feats
        )


def _seen_datasets(store: Any, model: RankerModel, entry: Any) -> frozenset[str]:
    if model.datasets_ is not None:
        return frozenset(model.datasets_)
    # saved before rankers recorded their datasets: those with runs it could have seen
    found = store.sql(
        "SELECT DISTINCT dataset FROM runs WHERE recorded_at <= CAST(? AS TIMESTAMP)",
        [entry.trained_at],
    )
    return frozenset(str(d) for d in found["dataset"].to_list())


def plan_active(store: Any, entry: Any | None) -> ActivePlan:
    """How to score the active ranker ``entry`` (a ``RankerEntry`` or ``None``)."""
    if entry is None:
        return ActivePlan("rules", note="no ranker is active")
    try:
        model = RankerModel.load(Path(entry.path))
    except (RankerError, OSError, ValueError, KeyError) as exc:
        logger.warning("the active ranker %s does not load: %s", entry.version, exc)
        return ActivePlan("rules", entry.version, note=f"the active ranker does not load ({exc})")
    if model.recipe_ is not None:
        params, meta = dict(model.recipe_["params"]), list(model.recipe_["meta_features"])
        return ActivePlan(
            "refitted",
            entry.version,
            recipe_scorer(params, meta),
            params=params,
            meta_features=meta,
            note="its recipe refitted on the same folds",
        )
    seen = _seen_datasets(store, model, entry)

    def applied(train: Any, test: Any) -> np.ndarray:
        return model.predict(test)

    return ActivePlan(
        "applied",
        entry.version,
        applied,
        seen=seen,
        note="its recipe is unknown: applied as it is, on the datasets it never saw",
    )


def side(rows: Sequence[Mapping[str, Any]], method: str) -> dict[str, float]:
    """Mean metrics of ``method`` over the per-dataset ``rows``."""
    return {
        k: float(np.mean([r[method][k] for r in rows])) if rows else float("nan")
        for k in GATE_METRICS
    }
