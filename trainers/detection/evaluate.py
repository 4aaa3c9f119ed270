"""Score a detector on a split: predict at the training size, map the boxes back to each
file's pixels, and compute COCO mAP with :func:`mlsel.trainers.detection.coco.coco_metrics`
(the evaluator every backend shares)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mlsel.trainers.detection.data import DetectionSplit

__all__ = ["Prediction", "detection_metrics", "predict_images", "to_pixels"]

#: One image's detections: boxes ``(M, 4)`` xyxy, scores ``(M,)``, class indices ``(M,)``.
Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]


def predict_images(
    model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 8
) -> list[Prediction]:
    """Detections of ``(N, 3, S, S)`` uint8 images, in pixels of those ``S x S`` inputs;
    labels are dataset class indices (the background label 0 removed)."""
    import torch

    model.eval()
    out: list[Prediction] = []
    with torch.no_grad():
        for lo in range(0, len(images), batch_size):
            batch = images[lo : lo + batch_size].to(device).float().div_(255.0)
            for found in model(list(batch)):
                out.append(
                    (
                        found["boxes"].cpu().numpy().astype(np.float32),
                        found["scores"].cpu().numpy().astype(np.float32),
                        found["labels"].cpu().numpy().astype(np.int64) - 1,
                    )
                )
    return out


def to_pixels(
    predictions: Sequence[Prediction], sizes: Sequence[tuple[int, int]], side: int
) -> list[Prediction]:
    """Boxes predicted on ``side x side`` inputs, in pixels of images of ``sizes``
    (``(width, height)``), clipped to them."""
    out = []
    for (boxes, scores, labels), (width, height) in zip(predictions, sizes, strict=True):
        scale = np.array([width, height, width, height], dtype=np.float32) / side
        scaled = np.clip(boxes * scale, 0, [width, height, width, height]).astype(np.float32)
        out.append((scaled, scores, labels))
    return out


def detection_metrics(
    split: DetectionSplit, predictions: Sequence[Prediction], classes: Sequence[str]
) -> dict[str, float]:
    """COCO metrics of ``predictions`` (in pixels of the training size) on ``split``, in
    the original images' pixels.

    Returns :func:`~mlsel.trainers.detection.coco.coco_run_metrics`' keys (``map``, the
    run's score, ``map50``, ``map75``, ``ap/<class>``, ``mAP50-95``, ...; NaN figures left
    out) and ``n_val``.
    """
    from mlsel.trainers.detection.coco import coco_metrics, coco_run_metrics

    pixels = to_pixels(predictions, split.sizes, split.size)
    found = coco_metrics(split.original_truth(), pixels, classes, list(split.sizes))
    metrics = coco_run_metrics(found)
    metrics["n_val"] = float(len(split))
    return metrics
