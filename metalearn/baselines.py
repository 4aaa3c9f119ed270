"""Scorers the ranker is measured against (and the ranker's own scorer).

A scorer is ``scorer(train, test) -> np.ndarray``: fit on the training-shape frame
``train``, return one score per row of ``test`` (higher is better).

- ``best-on-average``: a config-only portfolio. A config's score is its mean normalized
  score over the training datasets; a config never run there falls back to the mean of
  its architecture, then to the overall mean.
- ``nearest-dataset``: the same portfolio restricted to the k training datasets nearest
  by standardized meta-features (auto-sklearn's warm start); ties at the k-th distance
  are all kept, so identical meta-features degrade to ``best-on-average``.
- ``rules``: :class:`RulesRanker` on each row's meta-features and config.
- ``ranker``: :class:`RankerModel` fitted on ``train``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mlsel.metalearn.ranker import normalized_values

__all__ = ["SCORERS", "nearest_scorer", "portfolio_scorer", "ranker_scorer", "rules_scorer"]


def _with_value(frame: Any) -> Any:
    """Adds ``_v``: the within-dataset normalized score, failures = 0."""
    import polars as pl

    return frame.with_columns(pl.Series("_v", normalized_values(frame), dtype=pl.Float64))


def _config_key(frame: Any) -> Any:
    import polars as pl

    cols = sorted(c for c in frame.columns if c.startswith("cfg_") and c != "cfg_seed")
    return pl.concat_str([pl.col(c).cast(pl.Utf8).fill_null("") for c in cols], separator="|")


def _portfolio(train: Any, test: Any) -> np.ndarray:
    import polars as pl

    train = _with_value(train).with_columns(_config_key(train).alias("_k"))
    by_key = train.group_by("_k").agg(pl.col("_v").mean().alias("_mk"))
    by_arch = train.group_by("cfg_arch").agg(pl.col("_v").mean().alias("_ma"))
    overall = float(train["_v"].mean()) if train.height else 0.0
    test = test.with_columns(_config_key(test).alias("_k"))
    joined = test.select("_k", "cfg_arch").join(by_key, on="_k", how="left", maintain_order="left")
    joined = joined.join(by_arch, on="cfg_arch", how="left", maintain_order="left")
    # an exact config seen before ranks by its own mean, above its architecture's mean
    score = joined.select(
        pl.coalesce(pl.col("_mk") + 1.0, pl.col("_ma"), pl.lit(overall))
    ).to_series()
    return score.to_numpy().astype(float)


def portfolio_scorer(train: Any, test: Any) -> np.ndarray:
    """Best-on-average portfolio (config-only)."""
    return _portfolio(train, test)


def nearest_scorer(train: Any, test: Any, k: int = 3) -> np.ndarray:
    """Portfolio of the ``k`` training datasets nearest to each test dataset."""
    import polars as pl

    feats = [c for c in train.columns if c.startswith("feat_") and c in test.columns]
    out = np.zeros(test.height)
    test = test.with_row_index("_row")
    if not feats:
        return _portfolio(train, test.drop("_row"))
    centres = train.group_by("dataset").agg([pl.col(c).cast(pl.Float64).mean() for c in feats])
    matrix = centres.select(feats).to_numpy().astype(float)
    with warnings.catch_warnings():  # a feature no dataset has is all NaN: left out below
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(matrix, axis=0), np.nanstd(matrix, axis=0)
    usable = np.isfinite(std) & (std > 0)
    z = np.nan_to_num((matrix[:, usable] - mean[usable]) / std[usable])
    names = centres["dataset"].to_list()
    fallback = _portfolio(train, test.drop("_row"))
    for (_,), part in test.group_by("dataset", maintain_order=True):
        rows = part["_row"].to_numpy()
        point = part.select(feats).cast(pl.Float64).to_numpy().astype(float).mean(axis=0)
        zp = np.nan_to_num((point[usable] - mean[usable]) / std[usable])
        dist = np.sqrt(((z - zp) ** 2).sum(axis=1))
        cutoff = np.sort(dist)[min(k, len(dist)) - 1]
        near = [names[i] for i in np.flatnonzero(dist <= cutoff + 1e-12)]
        local = _portfolio(train.filter(pl.col("dataset").is_in(near)), part.drop("_row"))
        # architectures the neighbours never ran fall back to the whole portfolio, below them
        seen = set(train.filter(pl.col("dataset").is_in(near))["cfg_arch"].to_list())
        arch = part["cfg_arch"].to_list()
        out[rows] = [
            v if a in seen else f - 1.0 for v, a, f in zip(local, arch, fallback[rows], strict=True)
        ]
    return out


def rules_scorer(train: Any, test: Any) -> np.ndarray:
    """Production rules; ``train`` is not used."""
    from mlsel.metalearn.features import configs_from_frame
    from mlsel.metalearn.rules import RulesRanker

    feats = [c for c in test.columns if c.startswith("feat_")]
    configs = configs_from_frame(test)
    rules = RulesRanker()
    out = np.empty(test.height)
    for i, row in enumerate(test.select(feats).iter_rows(named=True)):
        features = {k[5:]: v for k, v in row.items() if v is not None}
        out[i] = rules.score(features, [configs[i]])[0]
    return out


def ranker_scorer(train: Any, test: Any) -> np.ndarray:
    """The LightGBM ranker fitted on ``train``."""
    from mlsel.metalearn.ranker import RankerModel

    return RankerModel().fit(train).predict(test)


SCORERS = {
    "ranker": ranker_scorer,
    "best-on-average": portfolio_scorer,
    "nearest-dataset": nearest_scorer,
    "rules": rules_scorer,
}
