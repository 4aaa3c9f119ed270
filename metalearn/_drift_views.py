"""The three views of :mod:`mlsel.metalearn.drift`, each a figure, a threshold and words:
the profile's standardised mean differences, the embeddings' MMD permutation test, and
the predicted classes against the training labels."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FEATURE_WORDS",
    "PROFILE_THRESHOLD",
    "TV_THRESHOLD",
    "ClassView",
    "EmbeddingView",
    "FeatureShift",
    "ProfileView",
    "class_view",
    "mmd_permutation_test",
    "profile_view",
]

PROFILE_THRESHOLD = 1.0  # |standardised mean difference| at which a feature "moved"
TV_THRESHOLD = 0.3  # total variation distance of class shares that can mean drift
_SMD_CAP = 100.0  # a feature constant on both sides at different values
FEATURE_WORDS = {
    "brightness": "brightness",
    "contrast": "contrast",
    "saturation": "saturation",
    "colourfulness": "colourfulness",
    "sharpness": "sharpness",
    "edge_density": "edge density",
    "pixel_entropy": "pixel entropy",
    "grayscale": "grey share",
    "width": "width",
    "height": "height",
}


@dataclass(frozen=True)
class FeatureShift:
    """One profile feature: its mean on each side and the standardised difference
    (new minus reference, in pooled standard deviations)."""

    name: str
    reference_mean: float
    new_mean: float
    smd: float


@dataclass(frozen=True)
class ProfileView:
    """The features, the largest |SMD| first; ``moved`` when it reaches ``threshold``."""

    shifts: tuple[FeatureShift, ...]
    threshold: float
    moved: bool
    words: str

    @property
    def largest(self) -> float:
        return abs(self.shifts[0].smd) if self.shifts else 0.0


@dataclass(frozen=True)
class EmbeddingView:
    """The MMD test on ``arch`` embeddings at ``image_size`` px."""

    arch: str
    image_size: int
    mmd2: float
    p_value: float
    bandwidth: float
    permutations: int
    alpha: float
    drifted: bool
    words: str


@dataclass(frozen=True)
class ClassView:
    """Predicted class shares of the new images against the training label shares."""

    reference: dict[str, float]
    new: dict[str, float]
    tv: float
    chi2: float
    p_value: float
    tv_threshold: float
    alpha: float
    drifted: bool
    words: str


def profile_view(reference: np.ndarray, new: np.ndarray) -> ProfileView:
    shifts = []
    for j, name in enumerate(FEATURE_WORDS):
        a, b = reference[:, j], new[:, j]
        diff = float(b.mean() - a.mean())
        pooled = math.sqrt((float(a.var(ddof=1)) + float(b.var(ddof=1))) / 2)
        if pooled > 1e-12:
            smd = max(-_SMD_CAP, min(_SMD_CAP, diff / pooled))
        else:
            smd = 0.0 if abs(diff) < 1e-12 else math.copysign(_SMD_CAP, diff)
        shifts.append(FeatureShift(name, float(a.mean()), float(b.mean()), smd))
    shifts.sort(key=lambda s: -abs(s.smd))
    top = shifts[0]
    moved = abs(top.smd) >= PROFILE_THRESHOLD
    words = f"{FEATURE_WORDS[top.name]} moved most ({top.smd:+.1f} sd)"
    others = [s for s in shifts[1:3] if abs(s.smd) >= PROFILE_THRESHOLD]
    if others:
        words += ", then " + ", ".join(f"{FEATURE_WORDS[s.name]} ({s.smd:+.1f} sd)" for s in others)
    if not moved:
        words = (
            f"no profile feature moved {PROFILE_THRESHOLD:g} sd (the most: "
            f"{FEATURE_WORDS[top.name]}, {top.smd:+.1f} sd)"
        )
    return ProfileView(tuple(shifts), PROFILE_THRESHOLD, moved, words)


def mmd_permutation_test(
    x: np.ndarray, y: np.ndarray, *, permutations: int = 200, seed: int = 0
) -> tuple[float, float, float]:
    """``(unbiased MMD², permutation p-value, bandwidth)`` of samples ``x`` and ``y``
    (rows), RBF kernel ``exp(-d² / 2σ²)`` with σ the median pairwise distance.

    The p-value is ``(1 + #{permuted MMD² >= observed}) / (1 + permutations)``, with the
    permutations drawn from ``seed``: the same inputs and seed give the same p-value.
    """
    import numpy as np

    z = np.vstack([x, y]).astype(np.float64)
    n, m = len(x), len(y)
    total = n + m
    sq = (z * z).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    np.fill_diagonal(d2, 0.0)
    median = float(np.median(d2[np.triu_indices(total, 1)]))
    if median <= 0.0:  # (nearly) every point the same: nothing to tell apart
        return 0.0, 1.0, 0.0
    kernel = np.exp(-d2 / (2.0 * median))

    def statistic(first: np.ndarray) -> np.ndarray:  # (P, N) indicators of the x side
        second = 1.0 - first
        k_first = first @ kernel
        xx = ((k_first * first).sum(axis=1) - n) / (n * (n - 1))
        xy = (k_first * second).sum(axis=1) / (n * m)
        yy = (((second @ kernel) * second).sum(axis=1) - m) / (m * (m - 1))
        return xx + yy - 2.0 * xy

    observed = float(statistic(np.r_[np.ones(n), np.zeros(m)][None, :])[0])
    rng = np.random.default_rng(seed)
    labels = np.zeros((permutations, total))
    for row in range(permutations):
        labels[row, rng.permutation(total)[:n]] = 1.0
    permuted = statistic(labels)
    # a tolerance: a permutation that only reorders equal points ties the observed value
    exceed = int((permuted >= observed - 1e-12).sum())
    return observed, (1 + exceed) / (1 + permutations), math.sqrt(median)


def class_view(
    train_labels: Sequence[str], predicted: Sequence[str], classes: Sequence[str], alpha: float
) -> ClassView:
    import numpy as np
    from scipy.stats import chi2_contingency

    names = list(dict.fromkeys([*classes, *sorted(set(train_labels) - set(classes))]))
    ref_counts, new_counts = Counter(train_labels), Counter(predicted)
    table = np.array([[ref_counts[c] for c in names], [new_counts[c] for c in names]], float)
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    tv = float(0.5 * np.abs(p - q).sum())
    kept = table[:, table.sum(axis=0) > 0]
    chi2, p_value = 0.0, 1.0
    if kept.shape[1] > 1:
        found = chi2_contingency(kept, correction=False)
        chi2, p_value = float(found[0]), float(found[1])
    drifted = tv > TV_THRESHOLD and p_value < alpha
    moved = max(names, key=lambda c: abs(q[names.index(c)] - p[names.index(c)]))
    i = names.index(moved)
    figures = f"TV {tv:.2f} {'>' if tv > TV_THRESHOLD else '<='} {TV_THRESHOLD:g}"
    figures += f", chi-square p = {p_value:.3g} {'<' if p_value < alpha else '>='} {alpha:g}"
    how = "differ from" if drifted else "match"
    words = (
        f"the predicted classes {how} the training labels ({figures}); class {moved!r} "
        f"{p[i]:.0%} -> {q[i]:.0%}"
    )
    return ClassView(
        {c: float(v) for c, v in zip(names, p, strict=True)},
        {c: float(v) for c, v in zip(names, q, strict=True)},
        tv,
        chi2,
        p_value,
        TV_THRESHOLD,
        alpha,
        drifted,
        words,
    )
