"""Suggest configurations for a dataset: profile, candidates, score, budget, diversity.

The active ranker scores the candidates when it exists and has enough experience for
this task; otherwise the production rules do, and the report says which and why.
Configs that completed on this very dataset rank by their observed score, the best of
them first, and the predictions place the others around them (:mod:`._observed`).
Configs predicted not to fit the time budget (or this machine's memory) are dropped,
and the list keeps one config per architecture before it repeats any.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlsel.kernel.catalogue import TRAINABLE_BACKENDS
from mlsel.kernel.errors import ConfigError, DatasetError, RankerError, invalid_parameter
from mlsel.kernel.records import Config, DatasetProfile
from mlsel.metalearn._observed import combine, observed_results
from mlsel.metalearn._refit import MIN_DATASETS, load_active
from mlsel.metalearn.cost import CostEstimate, CostModel
from mlsel.metalearn.features import candidate_frame, configs_from_frame
from mlsel.metalearn.rules import RulesRanker
from mlsel.metalearn.space import CandidateSpace

__all__ = ["Suggestion", "SuggestionReport", "suggest"]

logger = logging.getLogger(__name__)
_MAX_SEEN = 200


@dataclass(frozen=True)
class Suggestion:
    """One suggested config: its predicted score (higher is better, in the scorer's
    units), its predicted time and memory on this hardware, and the reasons; with the
    best score it reached on this dataset and its number of completed runs there, when
    it was run on it."""

    config: Config
    predicted_score: float
    predicted_seconds: float
    predicted_memory_mb: float
    reasons: tuple[str, ...]
    rank: int
    observed_score: float | None = None
    observed_runs: int = 0


@dataclass(frozen=True)
class SuggestionReport:
    """The suggestions for one dataset and how they were made."""

    profile: DatasetProfile
    suggestions: tuple[Suggestion, ...]
    scorer: str
    note: str
    dropped: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    observed: int = 0


def _profile_of(dataset: Any, store: Any) -> DatasetProfile:
    if isinstance(dataset, DatasetProfile):
        return dataset
    from mlsel import profilers

    if isinstance(dataset, (str, os.PathLike)):
        path = Path(dataset)
        if not path.exists():
            raise DatasetError(f"The dataset path {str(path)!r} does not exist. Check the path.")
        dataset = profilers.read_dataset(path)
    from mlsel.profilers.profile import profile_cached

    return profile_cached(dataset, store)


def _seen(frame: Any, task: str) -> list[Config]:
    import polars as pl

    if frame.height == 0:
        return []
    done = frame.filter(
        (pl.col("status") == "completed")
        & (pl.col("task") == task)
        & pl.col("cfg_backend").is_in(TRAINABLE_BACKENDS)
        & pl.col("score").is_not_null()
    )
    done = done.sort("score", descending=True).head(_MAX_SEEN)
    return [c.with_(seed=0) for c in configs_from_frame(done)]


def _diverse(order: Sequence[int], configs: Sequence[Config], top: int) -> list[int]:
    """Best first, one per architecture; then second picks, and so on."""
    picked: list[int] = []
    rounds: dict[str, int] = {}
    for limit in range(1, top + 1):
        for i in order:
            if len(picked) >= top:
                return picked
            arch = configs[i].arch
            if i not in picked and rounds.get(arch, 0) < limit:
                picked.append(i)
                rounds[arch] = rounds.get(arch, 0) + 1
    return picked


# Meta-features whose range the ranker must have seen to extrapolate, with the words
# for them: a ranker that learnt on grey digits says nothing of colour photos.
_EXPERIENCE = (("grayscale", "share of grey images"), ("image_side", "median image side"))


def _outside_experience(profile: DatasetProfile, frame: Any) -> str | None:
    """Why the ranker's runs do not cover ``profile`` (a meta-feature beyond the range of
    every dataset it learnt from), or ``None``."""
    import polars as pl

    from mlsel.metalearn._profile import ALIASES, profile_value

    for meaning, words in _EXPERIENCE:
        if meaning == "image_side" and profile.task == "detect":
            continue  # detectors resize every image to 320-512 px; box sizes are relative
        value = profile_value(profile.features, meaning)
        column = next((f"feat_{n}" for n in ALIASES[meaning] if f"feat_{n}" in frame.columns), None)
        if value is None or column is None:
            continue
        seen = frame.select(pl.col(column).cast(pl.Float64).drop_nans().drop_nulls())
        if seen.height == 0:
            continue
        low, high = float(seen[column].min()), float(seen[column].max())
        margin = 0.1 * max(abs(high - low), abs(high), 1e-9)
        if not low - margin <= value <= high + margin:
            return (
                f"the ranker has seen no dataset like this one ({words} {value:.3g}; its "
                f"runs span {low:.3g} to {high:.3g})"
            )
    return None


#: Datasets of a task the active ranker must have learnt from to rank that task's configs.
MIN_TASK_DATASETS = 3
_TASK_WORDS = {"detect": "detection", "classify": "classification"}


def _choose_scorer(store: Any, task: str) -> tuple[Any, str, str]:
    try:
        loaded = load_active(store)
    except RankerError as exc:
        return None, "rules", f"rules: the active ranker could not be loaded ({exc})"
    if loaded is None:
        return None, "rules", "rules: no ranker has been trained yet (run `mlsel refit`)"
    model, entry = loaded
    if model.n_datasets_ < MIN_DATASETS:
        return (
            None,
            "rules",
            (
                f"rules: the ranker {entry.version} has seen only "
                f"{model.n_datasets_} datasets (needs {MIN_DATASETS})"
            ),
        )
    if model.tasks_ and task not in model.tasks_:
        return None, "rules", f"rules: the ranker {entry.version} has no {task} experience"
    runs, datasets = model.task_counts_.get(task, (None, None))
    if datasets is not None and datasets < MIN_TASK_DATASETS:
        return (
            None,
            "rules",
            (
                f"rules: the ranker {entry.version} has seen only {datasets} {task} "
                f"datasets (needs {MIN_TASK_DATASETS})"
            ),
        )
    own = (
        f"; it ranks {_TASK_WORDS.get(task, task)} configs from {runs} runs on "
        f"{datasets} such datasets"
        if runs is not None and len(model.task_counts_) > 1
        else ""
    )
    return (
        model,
        "ranker",
        (
            f"ranker {entry.version}, trained on {model.n_rows_} runs of "
            f"{model.n_datasets_} datasets{own}"
        ),
    )


def suggest(
    dataset: Any,
    *,
    store: Any,
    home: str | os.PathLike[str] | None = None,
    top: int = 5,
    budget_s: float | None = None,
    device: str = "auto",
    n_devices: int = 1,
) -> SuggestionReport:
    """Suggest the ``top`` configs for ``dataset`` (a path, a ``Dataset`` or a profile).

    Args:
        store: an open ``Store`` (profiles are cached there; runs teach the cost model).
        home: the mlsel home (unused beyond the store's; kept for symmetry with refit).
        top: how many suggestions.
        budget_s: drop configs predicted to take longer than this many seconds.
        device: ``auto``, ``cpu`` or ``cuda``: the hardware the costs are for.
        n_devices: GPUs trained on in parallel (data parallel: time divides).
    """
    if top < 1:
        raise invalid_parameter("top", "suggest", "an int in [1, inf)", top)
    if budget_s is not None and budget_s <= 0:
        raise ConfigError(f"The budget must be positive. Got {budget_s!r} seconds instead.")
    profile = _profile_of(dataset, store)
    frame = store.training_frame()
    space = CandidateSpace()
    configs = space.candidates(profile.task, profile, seen=_seen(frame, profile.task))
    observed = observed_results(frame, profile.fingerprint, profile.task)
    known = set(configs)
    configs += [c for c in observed if c not in known]
    model, scorer, note = _choose_scorer(store, profile.task)
    unseen = _outside_experience(profile, frame) if model is not None else None
    if unseen is not None:
        model, scorer, note = None, "rules", f"rules: {unseen}"
    if model is not None:
        rows = candidate_frame(profile, configs)
        scores = model.predict(rows)
    else:
        rules = RulesRanker()
        scores = rules.score(profile, configs)
    costs = CostModel(device=device).fit(frame)
    estimates = [costs.predict(c, profile) for c in configs]
    if n_devices > 1:
        estimates = [
            CostEstimate(
                e.seconds_per_epoch / n_devices,
                e.total_seconds / n_devices,
                e.peak_memory_mb,
                e.basis,
            )
            for e in estimates
        ]
    keep = np.ones(len(configs), dtype=bool)
    if budget_s is not None:
        keep &= np.array([e.total_seconds <= budget_s for e in estimates])
    ram = _host_ram_mb()
    if costs.device_ == "cpu" and ram:
        keep &= np.array([e.peak_memory_mb <= 0.9 * ram for e in estimates])
    order = [i for i in combine(scores, [_score(observed, c) for c in configs]) if keep[i]]
    picked = _diverse(order, configs, top)
    if model is not None and picked:
        reasons = model.explain(candidate_frame(profile, [configs[i] for i in picked]))
    else:
        reasons = [RulesRanker().reasons(profile, configs[i]) for i in picked]
    suggestions = tuple(
        Suggestion(
            config=configs[i],
            predicted_score=float(scores[i]),
            predicted_seconds=estimates[i].total_seconds,
            predicted_memory_mb=estimates[i].peak_memory_mb,
            reasons=tuple(reasons[n]),
            rank=n + 1,
            observed_score=_score(observed, configs[i]),
            observed_runs=observed[configs[i]].runs if configs[i] in observed else 0,
        )
        for n, i in enumerate(picked)
    )
    dropped = int((~keep).sum())
    warnings: tuple[str, ...] = ()
    if not suggestions and budget_s is not None:
        warnings = (f"no candidate fits the budget of {budget_s:.0f} s; raise --budget",)
    return SuggestionReport(
        profile=profile,
        suggestions=suggestions,
        scorer=scorer,
        note=note,
        dropped=dropped,
        warnings=warnings,
        observed=len(observed),
    )


def _score(observed: Any, config: Config) -> float | None:
    seen = observed.get(config)
    return seen.score if seen is not None else None


def _host_ram_mb() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.virtual_memory().total / 2**20
