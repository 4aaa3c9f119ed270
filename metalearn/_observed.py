"""What the store has observed on a dataset, and how it joins the predictions of `suggest`.

A config that completed on the very dataset asked about has a score no prediction can
beat as evidence. :func:`observed_results` collects them (seed aside: a config run with
several seeds is one config, with its best score and the count of runs).
:func:`combine` orders candidates on the observed scale: observed configs by their
score, the others by the prediction mapped onto that scale through the observed configs
(a least-squares line of observed score on predicted score) and kept below the best
observed one, which therefore comes first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsel.kernel.catalogue import TRAINABLE_BACKENDS
from mlsel.kernel.records import Config

__all__ = ["Observed", "combine", "observed_results"]


@dataclass(frozen=True)
class Observed:
    """A config's completed runs on one dataset: its best score and how many runs."""

    score: float
    runs: int


def observed_results(frame: Any, fingerprint: str, task: str) -> dict[Config, Observed]:
    """Completed, scored runs of trainable configs on ``fingerprint``, by config (seed 0)."""
    import polars as pl

    from mlsel.metalearn.features import configs_from_frame

    if frame.height == 0:
        return {}
    done = frame.filter(
        (pl.col("dataset") == fingerprint)
        & (pl.col("status") == "completed")
        & (pl.col("task") == task)
        & pl.col("cfg_backend").is_in(TRAINABLE_BACKENDS)
        & pl.col("score").is_not_null()
    )
    out: dict[Config, Observed] = {}
    for config, score in zip(configs_from_frame(done), done["score"].to_list(), strict=True):
        key = config.with_(seed=0)
        seen = out.get(key)
        best = float(score) if seen is None else max(seen.score, float(score))
        out[key] = Observed(best, 1 if seen is None else seen.runs + 1)
    return out


def combine(predicted: np.ndarray, observed: Sequence[float | None]) -> np.ndarray:
    """An order of the candidates (indices, best first) joining observed scores and
    predictions; with nothing observed, the order of the predictions."""
    predicted = np.asarray(predicted, dtype=float)
    known = np.array([v is not None for v in observed], dtype=bool)
    if not known.any():
        return np.argsort(-predicted, kind="stable")
    scores = np.array([v if v is not None else np.nan for v in observed], dtype=float)
    best = float(np.max(scores[known]))
    slope, intercept = 0.0, float(np.min(scores[known]))
    if known.sum() >= 2 and np.ptp(predicted[known]) > 0:
        fitted_slope, fitted_intercept = np.polyfit(predicted[known], scores[known], 1)
        if fitted_slope > 0:  # where the predictions disagree with what was seen, trust neither
            slope, intercept = float(fitted_slope), float(fitted_intercept)
    # an unobserved config stays below the best observed one: evidence before a guess
    below = np.nextafter(best, -np.inf)
    value = np.where(known, scores, np.minimum(intercept + slope * predicted, below))
    return np.lexsort((-predicted, -value))
