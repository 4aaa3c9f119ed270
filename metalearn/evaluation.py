"""Leave-one-dataset-out evaluation of the ranker against baselines.

For each held-out group (a dataset, or a source when datasets derive from a common one)
every scorer is fitted on the other groups and ranks the configs actually run on each
held-out dataset. Metrics per dataset, then averaged over datasets:

- normalized regret@k = (best - best of the top k picked) / (best - worst), where failed
  runs count as the worst outcome (the lowest score on that dataset);
- NDCG@5 with the normalized score ((s - worst) / (best - worst)) as gain.

``random`` is the exact expected value of a uniform pick, not a sample.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsel.metalearn.baselines import SCORERS

__all__ = ["Evaluation", "dataset_metrics", "evaluate", "random_metrics"]

logger = logging.getLogger(__name__)
Scorer = Callable[[Any, Any], np.ndarray]
METRICS = ("regret@1", "regret@3", "ndcg@5")
_DISCOUNT = 1.0 / np.log2(np.arange(2, 7))


@dataclass(frozen=True)
class Evaluation:
    """Mean metrics per method over the held-out datasets, and the per-dataset rows."""

    summary: Mapping[str, Mapping[str, float]]
    per_dataset: tuple[Mapping[str, Any], ...] = ()
    n_datasets: int = 0
    group_by: str = "dataset"
    folds: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    held_out: tuple[tuple[str, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (without the per-dataset rows)."""
        return {
            "summary": {k: dict(v) for k, v in self.summary.items()},
            "n_datasets": self.n_datasets,
            "group_by": self.group_by,
            "folds": self.folds,
            "notes": list(self.notes),
        }


def _normalized(frame: Any) -> np.ndarray | None:
    scores = frame["score"].to_numpy().astype(float)
    failed = (frame["status"].to_numpy() == "failed") | np.isnan(scores)
    if (~failed).sum() == 0:
        return None
    worst, best = np.nanmin(scores[~failed]), np.nanmax(scores[~failed])
    if failed.sum() == 0 and best == worst:
        return None
    scores = np.where(failed, worst, scores)
    if best == worst:  # every run that finished tied; the failures are worse
        return np.where(failed, 0.0, 1.0)
    return (scores - worst) / (best - worst)


def dataset_metrics(value: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Regret@1, regret@3 and NDCG@5 of ranking by ``predicted`` given normalized ``value``."""
    order = np.argsort(-predicted, kind="stable")
    ideal = np.sort(value)[::-1][:5]
    idcg = float((ideal * _DISCOUNT[: len(ideal)]).sum())
    top = value[order][:5]
    dcg = float((top * _DISCOUNT[: len(top)]).sum())
    return {
        "regret@1": 1.0 - float(value[order][:1].max()),
        "regret@3": 1.0 - float(value[order][:3].max()),
        "ndcg@5": dcg / idcg if idcg > 0 else 1.0,
    }


def random_metrics(value: np.ndarray) -> dict[str, float]:
    """The exact expected metrics of a uniformly random order."""
    n = len(value)
    ascending = np.sort(value)
    out = {}
    for k in (1, 3):
        k = min(k, n)
        # P(best of k picks is the i-th smallest) = C(i-1, k-1) / C(n, k)
        weights = np.array([math.comb(i, k - 1) for i in range(n)], dtype=float) / math.comb(n, k)
        out[f"regret@{k if k == 1 else 3}"] = 1.0 - float((weights * ascending).sum())
    ideal = np.sort(value)[::-1][:5]
    idcg = float((ideal * _DISCOUNT[: len(ideal)]).sum())
    expected_dcg = float(value.mean() * _DISCOUNT[: min(5, n)].sum())
    out["ndcg@5"] = expected_dcg / idcg if idcg > 0 else 1.0
    return out


def _folds(groups: list[str], max_folds: int | None, seed: int) -> list[list[str]]:
    if max_folds is None or len(groups) <= max_folds:
        return [[g] for g in groups]
    order = np.random.default_rng(seed).permutation(len(groups))
    folds: list[list[str]] = [[] for _ in range(max_folds)]
    for i, j in enumerate(order):
        folds[i % max_folds].append(groups[j])
    return folds


def evaluate(
    frame: Any,
    *,
    scorers: Mapping[str, Scorer] | None = None,
    group_by: str = "dataset",
    max_folds: int | None = None,
    seed: int = 0,
    hold_out: Collection[str] | None = None,
) -> Evaluation:
    """Leave-one-group-out evaluation of ``scorers`` (default: ranker + every baseline).

    Args:
        frame: training-shape frame (``Store.training_frame()``).
        scorers: name -> ``scorer(train, test) -> scores of test rows``.
        group_by: column whose values are held out together (``dataset`` or ``source``).
        max_folds: when there are more groups, hold them out in this many folds.
        seed: seed of the fold assignment.
        hold_out: only these groups are held out (each in turn); the others are in
            every fold's training part (the classification runs, when the detection
            tasks are held out). Default: every group.
    """
    import polars as pl

    scorers = dict(scorers) if scorers is not None else dict(SCORERS)
    groups = sorted({str(g) for g in frame[group_by].to_list()})
    if hold_out is not None:
        groups = [g for g in groups if g in {str(h) for h in hold_out}]
    folds = _folds(groups, max_folds, seed)
    rows: list[dict[str, Any]] = []
    used: list[tuple[str, ...]] = []
    key = frame[group_by].cast(pl.Utf8)
    for number, held in enumerate(folds):
        mask = key.is_in(held)
        train, test = frame.filter(~mask), frame.filter(mask)
        if train["dataset"].n_unique() < 2:
            continue
        predictions = {
            name: np.asarray(scorer(train, test), dtype=float) for name, scorer in scorers.items()
        }
        used.append(tuple(held))
        test = test.with_row_index("_row")
        for (dataset,), part in test.group_by("dataset", maintain_order=True):
            value = _normalized(part)
            if value is None or len(value) < 2:
                continue
            idx = part["_row"].to_numpy()
            row: dict[str, Any] = {"dataset": dataset, "n_runs": len(value), "fold": number}
            row["random"] = random_metrics(value)
            for name, predicted in predictions.items():
                row[name] = dataset_metrics(value, predicted[idx])
            rows.append(row)
    methods = ["random", *scorers]
    summary = {
        m: {k: float(np.mean([r[m][k] for r in rows])) if rows else math.nan for k in METRICS}
        for m in methods
    }
    return Evaluation(
        summary=summary,
        per_dataset=tuple(rows),
        n_datasets=len(rows),
        group_by=group_by,
        folds=len(folds),
        held_out=tuple(used),
    )
