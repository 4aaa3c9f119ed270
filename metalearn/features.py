"""One encoder for profile + config + architecture-card features, the same at fit and predict.

Rows come in the shape of ``Store.training_frame()`` (``cfg_<field>``, ``cfg_extra`` as
JSON text, ``feat_<meta-feature>``); :func:`candidate_frame` builds rows of that shape
from a profile and candidate configs, so training and suggesting share one path. The
fitted :class:`FeatureEncoder` is saved with the ranker (feature names, vocabularies,
version); loading one of another version, or predicting with a mismatched model, raises
:class:`RankerError`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from mlsel.kernel.errors import RankerError
from mlsel.kernel.records import Config, DatasetProfile
from mlsel.metalearn.cards import card_features

__all__ = [
    "ENCODING_VERSION",
    "MEASUREMENT_FEATURES",
    "FeatureEncoder",
    "candidate_frame",
    "configs_from_frame",
]

ENCODING_VERSION = 1
_CONFIG_FIELDS = [f.name for f in fields(Config)]
# Config numbers, with the transform that makes them comparable across scales.
_NUMERIC: dict[str, str] = {
    "lr": "log10",
    "weight_decay": "log10",
    "batch_size": "log2",
    "epochs": "id",
    "image_size": "id",
    "label_smoothing": "id",
    "min_per_class": "id",
    "patience": "id",
}
_CATEGORICAL = ("backend", "arch", "finetune", "augment", "optimizer", "schedule")
_MAX_EXTRA_VOCAB = 24


def candidate_frame(profile: DatasetProfile, configs: Sequence[Config]) -> Any:
    """Rows of the training-frame shape for ``configs`` on ``profile`` (a polars frame)."""
    import polars as pl

    data: dict[str, list[Any]] = {f"cfg_{name}": [] for name in _CONFIG_FIELDS}
    for config in configs:
        for name in _CONFIG_FIELDS:
            value = getattr(config, name)
            data[f"cfg_{name}"].append(
                json.dumps(dict(value), default=str) if name == "extra" else value
            )
    n = len(configs)
    for name, value in profile.features.items():
        data[f"feat_{name}"] = [float(value) if value is not None else math.nan] * n
    data["dataset"] = [profile.fingerprint] * n
    data["task"] = [profile.task] * n
    return pl.DataFrame(data, strict=False)


def configs_from_frame(frame: Any) -> list[Config]:
    """The :class:`Config` of every row of a training-shape frame."""
    cols = [c for c in _CONFIG_FIELDS if f"cfg_{c}" in frame.columns]
    out = []
    for row in frame.select([f"cfg_{c}" for c in cols]).iter_rows(named=True):
        data = {c: row[f"cfg_{c}"] for c in cols}
        extra = data.pop("extra", None)
        data["extra"] = json.loads(extra) if isinstance(extra, str) and extra else (extra or {})
        data = {k: v for k, v in data.items() if v is not None or k == "pretrained"}
        out.append(Config.from_dict(data))
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "false"):
            return float(low == "true")
        try:
            return float(low)
        except ValueError:
            return None
    return None


def _scaled(value: Any, how: str) -> float:
    number = _number(value)
    if number is None or math.isnan(number):
        return math.nan
    if how == "log10":
        return math.log10(max(number, 1e-9))
    if how == "log2":
        return math.log2(max(number, 1.0))
    return number


#: Profile entries that say how the profile was measured or how the user split off a test
#: set, not what the data is: how many images the pixel statistics and the landmarkers
#: looked at, and the test split that no run trains or validates on. As inputs they let
#: the ranker's choice turn on bookkeeping (leaving out a test split once flipped a
#: detection task's first pick through ``lm_images`` alone).
MEASUREMENT_FEATURES: frozenset[str] = frozenset(
    {"feat_pixel_sample", "feat_lm_images", "feat_n_test"}
)


class FeatureEncoder:
    """Turns training-shape rows into a numeric matrix; learns names and vocabularies.

    Args:
        max_extra: at most this many ``Config.extra`` keys become features (the most
            frequent ones, present in at least ``min_extra_share`` of the rows).
        min_extra_share: share of rows a key must appear in.
    """

    def __init__(self, max_extra: int = 30, min_extra_share: float = 0.05) -> None:
        self.max_extra = max_extra
        self.min_extra_share = min_extra_share

    def fit(self, frame: Any) -> FeatureEncoder:
        """Learn the feature names and vocabularies from a training-shape frame."""
        self.meta_ = sorted(
            c for c in frame.columns if c.startswith("feat_") and c not in MEASUREMENT_FEATURES
        )
        self.vocab_ = {
            name: sorted({str(v) for v in frame[f"cfg_{name}"].to_list() if v is not None})
            for name in _CATEGORICAL
            if f"cfg_{name}" in frame.columns
        }
        extras = _parse_extra(frame)
        counts: dict[str, int] = {}
        for row in extras:
            for key in row:
                counts[key] = counts.get(key, 0) + 1
        keep = [
            k
            for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            if n >= self.min_extra_share * max(len(extras), 1)
        ][: self.max_extra]
        self.extra_numeric_: list[str] = []
        self.extra_vocab_: dict[str, list[str]] = {}
        for key in sorted(keep):
            values = [row[key] for row in extras if key in row and row[key] not in (None, "")]
            if values and all(_number(v) is not None for v in values):
                self.extra_numeric_.append(key)
            else:
                vocab = sorted({str(v) for v in values})
                if 1 < len(vocab) <= _MAX_EXTRA_VOCAB:
                    self.extra_vocab_[key] = vocab
        self.feature_names_ = self._names()
        self.ranges_ = _task_ranges(frame, self.meta_)
        return self

    def _names(self) -> list[str]:
        card = list(card_features("").keys())
        return (
            [f"cfg_{n}" for n in _NUMERIC]
            + ["cfg_pretrained"]
            + [f"cfg_{n}" for n in self.vocab_]
            + card
            + [f"x_{k}" for k in self.extra_numeric_]
            + [f"x_{k}" for k in self.extra_vocab_]
            + list(self.meta_)
        )

    @property
    def categorical_(self) -> list[str]:
        """Names of the features that are category codes."""
        return [f"cfg_{n}" for n in self.vocab_] + [f"x_{k}" for k in self.extra_vocab_]

    def transform(self, frame: Any, *, clip: bool = True) -> np.ndarray:
        """The feature matrix of ``frame`` (rows x ``feature_names_``), NaN where unknown;
        with ``clip``, each row's profile clipped into its task's span (:func:`_task_ranges`):
        what the model reads. ``clip=False`` gives the profile as measured, for words."""
        if not hasattr(self, "feature_names_"):
            raise RankerError("This FeatureEncoder is not fitted yet: call fit(frame) first.")
        n = frame.height
        cols: list[np.ndarray] = []

        def column(name: str) -> list[Any]:
            return frame[name].to_list() if name in frame.columns else [None] * n

        for name, how in _NUMERIC.items():
            cols.append(np.array([_scaled(v, how) for v in column(f"cfg_{name}")]))
        cols.append(
            np.array([0.0 if v in (None, "none", "") else 1.0 for v in column("cfg_pretrained")])
        )
        for name, vocab in self.vocab_.items():
            index = {v: i for i, v in enumerate(vocab)}
            cols.append(
                np.array(
                    [
                        index.get(str(v), math.nan) if v is not None else math.nan
                        for v in column(f"cfg_{name}")
                    ],
                    dtype=float,
                )
            )
        archs = column("cfg_arch")
        cache = {a: card_features(str(a)) for a in set(archs)}
        for key in card_features("").keys():
            cols.append(np.array([cache[a][key] for a in archs], dtype=float))
        extras = _parse_extra(frame)
        for key in self.extra_numeric_:
            cols.append(np.array([_nan(_number(row.get(key))) for row in extras]))
        for key, vocab in self.extra_vocab_.items():
            index = {v: i for i, v in enumerate(vocab)}
            cols.append(
                np.array([index.get(str(row.get(key)), math.nan) for row in extras], dtype=float)
            )
        tasks = np.array(column("task"), dtype=object)
        spans = [(tasks == task, ranges) for task, ranges in self.ranges_.items()] if clip else []
        for name in self.meta_:
            values = _numeric_column(frame, name)
            for rows, ranges in spans:
                if name in ranges:
                    values[rows] = np.clip(values[rows], *ranges[name])  # NaN stays NaN
            cols.append(values)
        return np.column_stack(cols) if cols else np.empty((n, 0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state, with the encoding version."""
        return {
            "version": ENCODING_VERSION,
            "max_extra": self.max_extra,
            "min_extra_share": self.min_extra_share,
            "meta": self.meta_,
            "vocab": self.vocab_,
            "extra_numeric": self.extra_numeric_,
            "extra_vocab": self.extra_vocab_,
            "feature_names": self.feature_names_,
            "ranges": self.ranges_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        """Inverse of :meth:`to_dict`; another encoding version raises :class:`RankerError`."""
        if data.get("version") != ENCODING_VERSION:
            raise RankerError(
                f"The saved ranker uses feature encoding version {data.get('version')!r}; "
                f"this mlsel reads version {ENCODING_VERSION}. Run `mlsel refit` to retrain it."
            )
        enc = cls(max_extra=data["max_extra"], min_extra_share=data["min_extra_share"])
        enc.meta_ = list(data["meta"])
        enc.vocab_ = {k: list(v) for k, v in data["vocab"].items()}
        enc.extra_numeric_ = list(data["extra_numeric"])
        enc.extra_vocab_ = {k: list(v) for k, v in data["extra_vocab"].items()}
        enc.feature_names_ = enc._names()
        # ({}: saved before the encoder kept them; its profiles pass unclipped)
        enc.ranges_ = {
            task: {name: (float(lo), float(hi)) for name, (lo, hi) in ranges.items()}
            for task, ranges in data.get("ranges", {}).items()
        }
        if enc.feature_names_ != list(data["feature_names"]):
            raise RankerError(
                "The saved ranker's feature names do not match its encoding (the file was "
                "edited or written by another mlsel). Run `mlsel refit` to retrain it."
            )
        return enc


def _task_ranges(frame: Any, meta: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{task: {feature: (lo, hi)}}``: the span of each profile feature over the frame's
    datasets of each task (``{}`` without a task column).

    :meth:`FeatureEncoder.transform` clips a profile into its task's spans. Trees do not
    extrapolate: a value past every dataset of its task falls into leaves that only the
    other task's runs shaped. Seven detection tasks of 200 images each once ranked a
    detection dataset of 160 images by what classification runs of that size did."""
    import polars as pl

    if "task" not in frame.columns or not meta:
        return {}
    spans = frame.group_by("task").agg(
        *(pl.col(n).cast(pl.Float64).fill_nan(None).min().alias(f"lo:{n}") for n in meta),
        *(pl.col(n).cast(pl.Float64).fill_nan(None).max().alias(f"hi:{n}") for n in meta),
    )
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for row in spans.iter_rows(named=True):
        out[str(row["task"])] = {
            n: (float(row[f"lo:{n}"]), float(row[f"hi:{n}"]))
            for n in meta
            if row[f"lo:{n}"] is not None and row[f"hi:{n}"] is not None
        }
    return out


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _numeric_column(frame: Any, name: str) -> np.ndarray:
    """A column as floats, NaN where missing; a numeric column converts in one step, any
    other (numbers stored as text) value by value."""
    import polars as pl

    if name not in frame.columns:
        return np.full(frame.height, math.nan)
    series = frame[name]
    if series.dtype.is_numeric() or series.dtype == pl.Boolean:
        return series.cast(pl.Float64).to_numpy().astype(float, copy=True)
    return np.array([_nan(_number(v)) for v in series.to_list()], dtype=float)


def _parse_extra(frame: Any) -> list[dict[str, Any]]:
    if "cfg_extra" not in frame.columns:
        return [{} for _ in range(frame.height)]
    out = []
    for text in frame["cfg_extra"].to_list():
        if isinstance(text, dict):
            out.append(text)
        elif isinstance(text, str) and text:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = {}
            out.append(parsed if isinstance(parsed, dict) else {})
        else:
            out.append({})
    return out
