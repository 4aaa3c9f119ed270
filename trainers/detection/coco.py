"""COCO box metrics from pycocotools: the one evaluator that scores every detection backend.

Ground truth and predictions arrive per image as arrays in pixels (``x1, y1, x2, y2``);
they are clipped to the image, turned into an in-memory COCO dataset (boxes as
``x, y, w, h``, the box area as ``area``, ``iscrowd`` 0, ids from 1) and scored by
``pycocotools.cocoeval.COCOeval`` with its defaults (10 IoU thresholds 0.50:0.95,
100 detections an image, COCO's small/medium/large areas). pycocotools prints; its
output is swallowed so that only mlsel's logs speak.

Undefined figures are NaN, not COCO's -1: ``map_small`` when no ground-truth box is
small, every figure when there is no ground-truth box at all. Classes without a
ground-truth box are left out of ``per_class_ap``.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlsel.kernel.errors import TrainingError

__all__ = ["coco_metrics", "coco_run_metrics", "require_evaluator"]

_SUMMARY = ("map", "map50", "map75", "map_small", "map_medium", "map_large")


def _pycocotools() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise TrainingError(
            "Detection runs are scored with pycocotools, which is not installed. Install "
            "it with: pip install 'mlsel[detection]' (or pip install pycocotools)."
        ) from None
    return COCO, COCOeval


def require_evaluator() -> None:
    """Check that the evaluator is installed, so that a run fails before it trains.

    Raises:
        TrainingError: pycocotools is not installed; the message names the extra.
    """
    _pycocotools()


def _clipped(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes clipped to the image as ``x, y, w, h``, and which of them still have an area."""
    array = np.asarray(boxes, dtype=float).reshape(-1, 4)
    x1 = np.clip(array[:, 0], 0, width)
    y1 = np.clip(array[:, 1], 0, height)
    x2 = np.clip(array[:, 2], 0, width)
    y2 = np.clip(array[:, 3], 0, height)
    xywh = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    return xywh, (xywh[:, 2] > 0) & (xywh[:, 3] > 0)


def _labels(labels: np.ndarray, n: int, n_classes: int, what: str) -> np.ndarray:
    array = np.asarray(labels).reshape(-1).astype(int)
    if len(array) != n:
        raise ValueError(f"{what}: {n} boxes but {len(array)} labels; give one label a box.")
    if len(array) and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(
            f"{what}: label {int(array.min() if array.min() < 0 else array.max())} is not a "
            f"class index in 0..{n_classes - 1}."
        )
    return array


def _datasets(
    ground_truth: list[tuple[np.ndarray, np.ndarray]],
    predictions: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    n_classes: int,
    image_sizes: list[tuple[int, int]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The COCO ground-truth dict and the list of detections, both in pixels."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for index, ((gt_boxes, gt_labels), (boxes, scores, labels), (width, height)) in enumerate(
        zip(ground_truth, predictions, image_sizes, strict=True)
    ):
        image_id = index + 1
        images.append({"id": image_id, "width": int(width), "height": int(height)})
        xywh, keep = _clipped(gt_boxes, width, height)
        classes = _labels(gt_labels, len(xywh), n_classes, f"ground truth of image {index}")
        for box, label in zip(xywh[keep], classes[keep], strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,  # COCOeval reads id 0 as "unmatched"
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": 0,
                }
            )
        xywh, keep = _clipped(boxes, width, height)
        classes = _labels(labels, len(xywh), n_classes, f"predictions of image {index}")
        confidence = np.asarray(scores, dtype=float).reshape(-1)
        if len(confidence) != len(xywh):
            raise ValueError(
                f"predictions of image {index}: {len(xywh)} boxes but {len(confidence)} scores."
            )
        for box, score, label in zip(xywh[keep], confidence[keep], classes[keep], strict=True):
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [float(v) for v in box],
                    "score": float(score),
                }
            )
    categories = [{"id": i + 1, "name": str(i)} for i in range(n_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def coco_metrics(
    ground_truth: list[tuple[np.ndarray, np.ndarray]],
    predictions: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    classes: Sequence[str],
    image_sizes: list[tuple[int, int]],
) -> dict[str, Any]:
    """COCO mAP50-95, mAP50, mAP75, mAP by object size and AP50-95 per class.

    Args:
        ground_truth: per image, ``(boxes, labels)``: boxes ``(N, 4)`` as ``x1, y1, x2, y2``
            in pixels, labels ``(N,)`` class indices.
        predictions: per image, in the same order, ``(boxes, scores, labels)``: boxes
            ``(M, 4)`` as ``x1, y1, x2, y2`` in pixels, scores and labels ``(M,)``. Boxes are
            clipped to the image; those left without an area are dropped.
        classes: the class names; a label is an index into them.
        image_sizes: per image, ``(width, height)`` in pixels.

    Returns:
        ``map``, ``map50``, ``map75``, ``map_small``, ``map_medium``, ``map_large`` (NaN
        where undefined), ``per_class_ap`` (class name -> AP50-95, classes with ground
        truth only), ``n_images`` and ``n_boxes`` (ground-truth boxes scored).

    Raises:
        ValueError: the lists differ in length, or a label is not a class index.
        TrainingError: pycocotools is not installed.
    """
    if not len(ground_truth) == len(predictions) == len(image_sizes):
        raise ValueError(
            f"coco_metrics needs one entry an image in each list; got {len(ground_truth)} "
            f"ground truths, {len(predictions)} predictions and {len(image_sizes)} sizes."
        )
    COCO, COCOeval = _pycocotools()  # noqa: N806 - the classes' own names
    gt_dict, detections = _datasets(ground_truth, predictions, len(classes), image_sizes)
    n_boxes = len(gt_dict["annotations"])
    out: dict[str, Any] = {key: math.nan for key in _SUMMARY}
    out.update(per_class_ap={}, n_images=len(ground_truth), n_boxes=n_boxes)
    if n_boxes == 0:
        return out
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        if detections:
            dt = gt.loadRes(detections)
        else:  # loadRes([]) raises; no detection is a valid answer that scores 0
            dt = COCO()
            dt.dataset = {
                "images": list(gt_dict["images"]),
                "annotations": [],
                "categories": list(gt_dict["categories"]),
            }
            dt.createIndex()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    for key, value in zip(_SUMMARY, evaluator.stats[: len(_SUMMARY)], strict=True):
        out[key] = float(value) if value > -1 else math.nan
    # precision: [IoU threshold, recall, class, area range, max detections]; area "all",
    # 100 detections, as stats[0]; -1 marks a class without ground truth
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    for k, name in enumerate(classes):
        values = precision[:, :, k]
        if (values > -1).any():
            out["per_class_ap"][str(name)] = float(values[values > -1].mean())
    return out


def coco_run_metrics(coco: dict[str, Any]) -> dict[str, float]:
    """:func:`coco_metrics` flattened into a run's metrics, the keys detection runs share.

    ``map``, ``map50``, ``map75``, ``map_small``, ``map_medium``, ``map_large``,
    ``n_images``, ``n_boxes``, ``ap/<class>`` (AP50-95 per class with ground truth), and
    ``mAP50-95`` / ``mAP50`` (the names the CLI and Ultralytics use) for ``map`` / ``map50``.
    Undefined (NaN) figures are left out, so a run's metrics stay valid JSON and a run
    without ground truth has no score.
    """
    out = {key: float(coco[key]) for key in _SUMMARY if not math.isnan(coco[key])}
    out.update({f"ap/{name}": float(ap) for name, ap in coco["per_class_ap"].items()})
    out["n_images"] = float(coco["n_images"])
    out["n_boxes"] = float(coco["n_boxes"])
    for short, alias in (("map", "mAP50-95"), ("map50", "mAP50")):
        if short in out:
            out[alias] = out[short]
    return out
