"""The learned ranker: LightGBM lambdarank over (dataset profile, config) rows.

One query group per dataset; the relevance of a run is its score min-max normalized within
its dataset, quantised into ``levels`` grades, and a failed run (or one that never reported
a score) gets grade 0, the worst outcome. The user's own runs (``source = local``) weigh
``local_weight`` times a bundled or imported run in the fit: they are the experience
closest to the datasets the user will ask about. Follows the scikit-learn estimator contract:
the constructor stores arguments, :meth:`RankerModel.fit` does the work, fitted state
ends in ``_``, using an unfitted model raises :class:`RankerError` saying what to call.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from mlsel.kernel.errors import RankerError
from mlsel.metalearn._words import feature_words
from mlsel.metalearn.features import FeatureEncoder

__all__ = ["LOCAL_WEIGHT", "RankerModel", "normalized_values", "relevance", "run_weights"]

logger = logging.getLogger(__name__)
MODEL_FILE, ENCODER_FILE, META_FILE = "model.txt", "encoder.json", "meta.json"
#: How much more a ``local`` run (the user's own) weighs in the fit than another.
LOCAL_WEIGHT = 3.0


def normalized_values(frame: Any) -> np.ndarray:
    """Per row, the score min-max normalized within its dataset (the best run there 1, the
    worst 0); failures and runs without a score 0; a dataset whose scored runs all tie
    gives them 1."""
    import polars as pl

    ok = pl.col("score").is_not_null() & (pl.col("status") != "failed")
    s = pl.when(ok).then(pl.col("score")).otherwise(None)
    lo, hi = s.min().over("dataset"), s.max().over("dataset")
    value = (
        pl.when(ok)
        .then(pl.when(hi > lo).then((pl.col("score") - lo) / (hi - lo)).otherwise(1.0))
        .otherwise(0.0)
    )
    return frame.select(value.cast(pl.Float64)).to_series().to_numpy()


def relevance(frame: Any, levels: int = 8) -> np.ndarray:
    """Grades ``1..levels-1`` from how close a run came to the best run of its dataset
    (:func:`normalized_values`); failures get 0.

    The grade keeps the margins that a rank would lose: a config second by a hair grades
    as high as the winner, and one far behind grades low even where few configs ran. With
    few datasets of a task (seven detection tasks) that is what keeps the ranker from
    backing a config that wins narrowly on most datasets and fails badly on the rest."""
    ok = (frame["score"].is_not_null() & (frame["status"] != "failed")).fill_null(False)
    grade = 1 + np.rint(normalized_values(frame) * (levels - 2))
    return np.where(ok.to_numpy(), grade, 0).astype(int)


def _task_counts(frame: Any) -> dict[str, list[int]]:
    """``{task: [runs, datasets]}`` of a training frame (``{}`` without a task column)."""
    import polars as pl

    if "task" not in frame.columns:
        return {}
    counts = frame.group_by("task").agg(
        pl.len().alias("runs"), pl.col("dataset").n_unique().alias("datasets")
    )
    return {str(t): [int(r), int(d)] for t, r, d in counts.iter_rows()}


def run_weights(frame: Any, local_weight: float) -> np.ndarray | None:
    """Per-row LightGBM weights: ``local_weight`` for the user's own runs, 1 for the rest
    (``None`` when every row weighs the same)."""
    if local_weight == 1.0 or "source" not in frame.columns:
        return None
    local = np.array([s == "local" for s in frame["source"].to_list()])
    if not local.any() or local.all():
        return None
    return np.where(local, float(local_weight), 1.0)


class RankerModel:
    """LightGBM ``LGBMRanker`` (lambdarank) that ranks configs for a dataset profile.

    Args:
        n_estimators, learning_rate, num_leaves, min_child_samples: LightGBM settings.
        levels: number of relevance grades.
        random_state: seed of LightGBM.
        n_jobs: LightGBM threads.
        local_weight: weight of a ``local`` run (the user's own) relative to a bundled or
            imported one (1.0: all alike).
    """

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 5,
        levels: int = 8,
        random_state: int = 0,
        n_jobs: int = 1,
        local_weight: float = LOCAL_WEIGHT,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.levels = levels
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.local_weight = local_weight

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (scikit-learn style)."""
        return {
            k: getattr(self, k)
            for k in (
                "n_estimators",
                "learning_rate",
                "num_leaves",
                "min_child_samples",
                "levels",
                "random_state",
                "n_jobs",
                "local_weight",
            )
        }

    def fit(self, frame: Any) -> RankerModel:
        """Fit on a training-shape frame (``Store.training_frame()``).

        Raises:
            RankerError: fewer than 2 datasets, or no dataset with 2 scored runs.
        """
        import lightgbm as lgb

        if frame.height == 0 or "dataset" not in frame.columns:
            raise RankerError("The ranker needs runs to learn from; the frame given is empty.")
        frame = frame.sort("dataset", maintain_order=True)
        n_datasets = frame["dataset"].n_unique()
        if n_datasets < 2:
            raise RankerError(
                f"The ranker needs finished runs on at least 2 datasets. Got {n_datasets}. "
                "Log more runs (mlsel run) or import some (mlsel store import)."
            )
        y = relevance(frame, self.levels)
        self.encoder_ = FeatureEncoder().fit(frame)
        X = self.encoder_.transform(frame)
        groups = frame.group_by("dataset", maintain_order=True).len()["len"].to_list()
        names = _safe_names(self.encoder_.feature_names_)
        cats = [names[self.encoder_.feature_names_.index(c)] for c in self.encoder_.categorical_]
        model = lgb.LGBMRanker(
            objective="lambdarank",
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            verbose=-1,
            label_gain=[float(2**i - 1) for i in range(max(self.levels, 2))],
        )
        model.fit(
            X,
            y,
            sample_weight=run_weights(frame, self.local_weight),
            group=groups,
            feature_name=names,
            categorical_feature=cats or "auto",
        )
        self.booster_ = model.booster_
        self.n_rows_ = frame.height
        self.n_datasets_ = n_datasets
        self.datasets_: list[str] | None = sorted({str(d) for d in frame["dataset"].to_list()})
        self.recipe_: dict[str, Any] | None = self._recipe()
        self.tasks_ = (
            sorted({str(t) for t in frame["task"].to_list()}) if ("task" in frame.columns) else []
        )
        self.task_counts_ = _task_counts(frame)
        return self

    def _recipe(self) -> dict[str, Any]:
        """How to fit this model again: its parameters and the profile features it used."""
        return {"params": self.get_params(), "meta_features": list(self.encoder_.meta_)}

    def _check(self) -> None:
        if not hasattr(self, "booster_"):
            raise RankerError("This RankerModel is not fitted yet: call fit(frame) or load(path).")

    def predict(self, frame: Any) -> np.ndarray:
        """A score per row (higher is better; only the order within a dataset means anything)."""
        self._check()
        return np.asarray(self.booster_.predict(self.encoder_.transform(frame)))

    def explain(self, frame: Any, top: int = 3) -> list[tuple[str, ...]]:
        """For each row, the ``top`` features that raised its score most, in words."""
        self._check()
        X = self.encoder_.transform(frame)
        contrib = np.asarray(self.booster_.predict(X, pred_contrib=True))[:, :-1]
        measured = self.encoder_.transform(frame, clip=False)  # the words quote these
        names = self.encoder_.feature_names_
        profile = np.array([n.startswith("feat_") for n in names])
        # The dataset's features are the same on every row; what differs is how much each
        # config gains from them. The profile reason is the feature that lifts this row
        # most above the average candidate ("few images per class" favours this config).
        lift = contrib - contrib.mean(axis=0) if X.shape[0] > 1 else contrib
        out = []
        for i in range(X.shape[0]):
            # a missing value says nothing a user can act on: skip it as a reason
            known = ~np.isnan(X[i])
            data = [
                j
                for j in np.argsort(-lift[i])
                if profile[j] and known[j] and lift[i, j] > 0 and contrib[i, j] > 0
            ][:1]
            rest = [
                j
                for j in np.argsort(-contrib[i])
                if j not in data and known[j] and contrib[i, j] > 0
            ][: top - len(data)]
            words = (feature_words(names[j], measured[i, j], self.encoder_) for j in data + rest)
            out.append(tuple(words))
        return out

    def save(self, path: str | Path) -> Path:
        """Write the model, its encoder and its metadata into the folder ``path``."""
        self._check()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(folder / MODEL_FILE))
        (folder / ENCODER_FILE).write_text(json.dumps(self.encoder_.to_dict(), indent=1))
        meta = {
            "params": self.get_params(),
            "n_rows": self.n_rows_,
            "n_datasets": self.n_datasets_,
            "tasks": self.tasks_,
            "task_counts": self.task_counts_,
            "datasets": self.datasets_,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> RankerModel:
        """Read a model written by :meth:`save`.

        Raises:
            RankerError: files missing, another encoding version, or features mismatched.
        """
        from mlsel.metalearn._booster import load_booster

        folder = Path(path)
        missing = [f for f in (MODEL_FILE, ENCODER_FILE, META_FILE) if not (folder / f).is_file()]
        if missing:
            raise RankerError(
                f"The ranker folder {folder} lacks {', '.join(missing)}. Run `mlsel refit`."
            )
        meta = json.loads((folder / META_FILE).read_text())
        params = meta.get("params")
        known = set(cls().get_params())
        recipe = isinstance(params, dict) and set(params) <= known
        if recipe:
            # a ranker saved before runs were weighted by source was fitted unweighted
            params = {"local_weight": 1.0, **params}
        model = cls(**params) if recipe else cls()
        model.encoder_ = FeatureEncoder.from_dict(json.loads((folder / ENCODER_FILE).read_text()))
        model.booster_ = load_booster(folder / MODEL_FILE)
        if model.booster_.feature_name() != _safe_names(model.encoder_.feature_names_):
            raise RankerError(
                f"The ranker in {folder} was trained on other features than its encoder "
                "declares. Run `mlsel refit` to retrain it."
            )
        model.n_rows_, model.n_datasets_ = meta["n_rows"], meta["n_datasets"]
        model.tasks_ = list(meta.get("tasks", []))
        # {task: [runs, datasets]} ({}: saved before mlsel counted them)
        model.task_counts_ = {str(k): list(v) for k, v in meta.get("task_counts", {}).items()}
        # the datasets it learnt from (None: saved before mlsel recorded them)
        datasets = meta.get("datasets")
        model.datasets_ = list(datasets) if isinstance(datasets, list) else None
        # None: the file does not say how it was fitted, so it can be applied, not refitted
        model.recipe_ = (
            {"params": model.get_params(), "meta_features": list(model.encoder_.meta_)}
            if recipe
            else None
        )
        return model


def _safe_names(names: list[str]) -> list[str]:
    # LightGBM refuses JSON special characters in feature names.
    return [re.sub(r"[^0-9A-Za-z_]", "_", n) for n in names]
