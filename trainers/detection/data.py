"""A detection split decoded once: square uint8 images and their boxes in pixels.

Images are decoded by the project's decoder (:func:`mlsel.trainers.cache.decode_images`,
which is :func:`mlsel.kernel.images.decode`) to ``size x size``, the square the
detectors resize to, so the model's own resize is the identity in training. YOLO boxes
(class, centre x, centre y, width, height, normalised) become ``x1, y1, x2, y2`` in
pixels of that square; boxes under one pixel a side there are dropped (torchvision
rejects empty boxes), and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlsel.kernel.errors import DatasetError

if TYPE_CHECKING:
    import torch

    from mlsel.kernel.dataset import Box, Dataset, DatasetItem

__all__ = ["DetectionSplit", "flip_boxes", "load_split", "yolo_to_xyxy"]

logger = logging.getLogger(__name__)


def yolo_to_xyxy(
    boxes: tuple[Box, ...], width: float, height: float
) -> tuple[np.ndarray, np.ndarray]:
    """YOLO boxes -> ``(xyxy (N, 4) float32 in pixels of a width x height image, class
    indices (N,) int64)``, clipped to the image."""
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    arr = np.asarray([b[1:] for b in boxes], dtype=np.float64)
    cx, cy, w, h = arr.T
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    xyxy *= np.array([width, height, width, height])
    xyxy = np.clip(xyxy, 0, [width, height, width, height])
    return xyxy.astype(np.float32), np.asarray([b[0] for b in boxes], dtype=np.int64)


@dataclass
class DetectionSplit:
    """One split at the training size.

    Attributes:
        items: the dataset items, in order.
        images: ``(N, 3, size, size)`` uint8.
        boxes: per image, ``(n, 4)`` float32 xyxy in pixels of the ``size`` square.
        labels: per image, ``(n,)`` int64 class indices.
        sizes: per image, ``(width, height)`` of the original file.
        size: the training side.
        dropped: boxes under one pixel a side at the training size, left out.
    """

    items: tuple[DatasetItem, ...]
    images: torch.Tensor
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    sizes: list[tuple[int, int]]
    size: int
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.items)

    def original_truth(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Ground truth per image in pixels of its original file (for COCO scoring)."""
        out = []
        for item, (w, h) in zip(self.items, self.sizes, strict=True):
            out.append(yolo_to_xyxy(item.boxes, w, h))
        return out

    def boxes_wh(self) -> np.ndarray:
        """``(N, 2)`` widths and heights of every box, in pixels at the training size."""
        if not self.boxes:
            return np.zeros((0, 2))
        xyxy = np.concatenate(self.boxes)
        return np.stack([xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], axis=1)


def _original_size(item: DatasetItem) -> tuple[int, int]:
    """``(width, height)`` from the reader's header pass, else from the file's header."""
    if item.width > 0 and item.height > 0:
        return item.width, item.height
    from PIL import Image

    try:
        with Image.open(item.path) as image:
            return image.size
    except OSError as exc:
        raise DatasetError(f"Cannot read the size of {item.path}: {exc}.") from None


def load_split(dataset: Dataset, split: str, size: int) -> DetectionSplit:
    """Decode ``split`` of ``dataset`` at ``size x size`` with its boxes.

    Raises:
        DatasetError: the split is empty, an image cannot be decoded, or a box names a
            class the dataset does not have.
    """
    from mlsel.trainers.cache import decode_images

    items = dataset.split(split)
    if not items:
        raise DatasetError(
            f"Dataset {dataset.name!r} has no images in its {split!r} split; training needs "
            "both a train and a val split. Add images or let the reader split the data."
        )
    boxes, labels, dropped = [], [], 0
    for item in items:
        xyxy, cls = yolo_to_xyxy(item.boxes, size, size)
        bad = (cls < 0) | (cls >= dataset.num_classes)
        if bad.any():
            raise DatasetError(
                f"{item.path} has a box of class {int(cls[bad][0])}; the dataset has "
                f"{dataset.num_classes} classes (0..{dataset.num_classes - 1})."
            )
        keep = ((xyxy[:, 2] - xyxy[:, 0]) >= 1) & ((xyxy[:, 3] - xyxy[:, 1]) >= 1)
        dropped += int((~keep).sum())
        boxes.append(xyxy[keep])
        labels.append(cls[keep])
    if dropped:
        logger.info("%d %s boxes under 1 px at %d px left out", dropped, split, size)
    images = decode_images([item.path for item in items], size)
    return DetectionSplit(
        items=items,
        images=images,
        boxes=boxes,
        labels=labels,
        sizes=[_original_size(item) for item in items],
        size=size,
        dropped=dropped,
    )


def flip_boxes(boxes: np.ndarray, width: float) -> np.ndarray:
    """Boxes of an image flipped left to right (``x -> width - x``)."""
    out = boxes.copy()
    out[:, 0], out[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return out
