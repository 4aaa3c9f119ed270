"""Anchor sizes and aspect ratios chosen from the training boxes.

The detectors share one head across their FPN levels, so each level's anchors are the
same multiple of its stride: ``size_l = a * stride_l`` (times the sub-octave scales
``2^0, 2^(1/3), 2^(2/3)``). Only ``a`` and the aspect ratios come from the data:

* box sides are ``sqrt(w * h)`` in pixels at the training size (``image_size`` x
  ``image_size``, the square the images are resized to);
* ``a`` makes the finest level's smallest anchor the 5 % quantile of the sides, unless
  the 5-95 % range is wider than the levels span; then the span is centred on it (in
  log space). ``a`` is kept in [1, 32]: an anchor never smaller than its stride;
* aspect ratios (``h / w``, as torchvision's ``AnchorGenerator`` reads them) are the 10,
  50 and 90 % quantiles of the boxes' ratios (in log space), merged when within a factor
  1.3 of each other: square boxes give one ratio, 1.0; as many tall as wide boxes give
  0.5, 1 and 2.

FCOS has no anchors: its points take one size per level, the stride, which with
torchvision's rule (a box goes to the level whose ``[4 s, 8 s]`` holds its largest
regression distance) gives the FCOS paper's scale ranges. Its plan records so.

numpy only: planning never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["SCALES", "AnchorPlan", "box_statistics", "plan_anchors"]

#: Sub-octave anchor scales of one level (RetinaNet's three).
SCALES: tuple[float, ...] = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
_LOW_Q, _HIGH_Q = 0.05, 0.95
_RATIO_QS = (0.1, 0.5, 0.9)
_MERGE = 1.3  # ratios closer than this factor become one
_MULTIPLE = (1.0, 32.0)


@dataclass(frozen=True)
class AnchorPlan:
    """Anchors per FPN level, and where they came from.

    Attributes:
        strides: the stride of each level, finest first.
        sizes: anchor sizes of each level in pixels at the training size.
        aspect_ratios: ``h / w`` ratios, the same at every level.
        multiple: ``a``, anchor size over stride at scale 1.
        source: how the plan was chosen, for the run's notes.
        statistics: quantiles of the training boxes (see :func:`box_statistics`).
    """

    strides: tuple[int, ...]
    sizes: tuple[tuple[float, ...], ...]
    aspect_ratios: tuple[float, ...]
    multiple: float
    source: str
    statistics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (saved in ``anchors.json`` and ``model.pt``)."""
        out = asdict(self)
        out["sizes"] = [list(level) for level in self.sizes]
        out["strides"] = list(self.strides)
        out["aspect_ratios"] = list(self.aspect_ratios)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnchorPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(
            strides=tuple(int(s) for s in data["strides"]),
            sizes=tuple(tuple(float(v) for v in level) for level in data["sizes"]),
            aspect_ratios=tuple(float(r) for r in data["aspect_ratios"]),
            multiple=float(data["multiple"]),
            source=str(data["source"]),
            statistics={k: float(v) for k, v in dict(data.get("statistics") or {}).items()},
        )


def box_statistics(sides: np.ndarray, ratios: np.ndarray) -> dict[str, float]:
    """Quantiles of box sides (px) and aspect ratios (``h / w``), and the box count."""
    stats: dict[str, float] = {"n_boxes": float(len(sides))}
    if len(sides):
        for q in (5, 25, 50, 75, 95):
            stats[f"side_q{q:02d}"] = round(float(np.quantile(sides, q / 100)), 2)
        for q in (10, 50, 90):
            stats[f"ratio_q{q:02d}"] = round(float(np.quantile(ratios, q / 100)), 3)
    return stats


def _aspect_ratios(ratios: np.ndarray) -> tuple[float, ...]:
    """The 10/50/90 % ratio quantiles, merged when close (the middle one kept)."""
    if not len(ratios):
        return (0.5, 1.0, 2.0)
    logs = np.log(ratios)  # in log space: ratios 0.5 and 2 are as far from 1
    picks = [float(np.exp(np.quantile(logs, q))) for q in _RATIO_QS]
    middle = picks[1]
    kept = [middle]
    for value in (picks[0], picks[2]):
        if max(value, middle) / min(value, middle) >= _MERGE:
            kept.append(value)
    return tuple(sorted(round(v, 2) for v in kept))


def plan_anchors(
    boxes_wh: np.ndarray | Sequence[tuple[float, float]],
    strides: Sequence[int],
    *,
    anchor_free: bool = False,
    scales: Sequence[float] = SCALES,
) -> AnchorPlan:
    """Anchors for FPN levels of ``strides`` from the training boxes' widths and heights.

    Args:
        boxes_wh: ``(N, 2)`` box widths and heights in pixels at the training size.
        strides: each level's stride, finest first.
        anchor_free: FCOS: one point size per level, the stride (see the module doc).
        scales: the sub-octave scales of each level.

    Returns:
        The plan; with no boxes, ``a = 4`` (torchvision's RetinaNet: 32 px at stride 8)
        and ratios 0.5, 1, 2, said so in ``source``.
    """
    wh = np.asarray(boxes_wh, dtype=float).reshape(-1, 2)
    wh = wh[(wh[:, 0] > 0) & (wh[:, 1] > 0)]
    sides = np.sqrt(wh[:, 0] * wh[:, 1])
    ratios = wh[:, 1] / wh[:, 0] if len(wh) else np.zeros(0)
    stats = box_statistics(sides, ratios)
    levels = tuple(int(s) for s in strides)
    if anchor_free:
        return AnchorPlan(
            strides=levels,
            sizes=tuple((float(s),) for s in levels),
            aspect_ratios=(1.0,),
            multiple=1.0,
            source="anchor-free (FCOS): one point per location, sized by the level's stride",
            statistics=stats,
        )
    top = max(scales)
    if len(sides):
        low, high = (float(np.quantile(sides, q)) for q in (_LOW_Q, _HIGH_Q))
        span = levels[-1] / levels[0] * top
        if high / low <= span:
            multiple = low / levels[0]
        else:  # wider than the levels reach: centre the span on the boxes
            multiple = math.sqrt(low * high / (levels[0] * levels[-1] * top))
        multiple = float(np.clip(multiple, *_MULTIPLE))
        source = (
            f"box statistics of {len(sides)} training boxes: sides {low:.1f}-{high:.1f} px "
            f"(5-95 %) at the training size"
        )
    else:
        multiple = 4.0
        source = "default (no training boxes): 4 x stride, ratios 0.5, 1, 2"
    sizes = tuple(tuple(round(multiple * s * k, 1) for k in scales) for s in levels)
    return AnchorPlan(
        strides=levels,
        sizes=sizes,
        aspect_ratios=_aspect_ratios(ratios),
        multiple=round(multiple, 3),
        source=source,
        statistics=stats,
    )
