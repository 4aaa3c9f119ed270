"""Boxes for new images from a saved detection run: :class:`DetectionPredictor`.

Each image is decoded by :func:`mlsel.kernel.images.decode` at the training size, as in
training (the same pixels for the same file), predicted, and its boxes scaled back to
the image's own pixels: a 2000 x 1000 photo gets boxes in that photo's coordinates.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlsel.kernel.errors import DatasetError, invalid_parameter

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["DetectionPredictor"]


def _size_and_pixels(source: Any, side: int) -> tuple[tuple[int, int], npt.NDArray[np.uint8]]:
    """``((width, height) of the image, its RGB pixels at side x side)``."""
    from mlsel.kernel.images import decode

    if isinstance(source, str | os.PathLike):
        from PIL import Image

        try:
            with Image.open(source) as image:
                size = image.size
        except OSError as exc:
            raise DatasetError(f"Cannot read the image {source}: {exc}.") from None
        return (int(size[0]), int(size[1])), decode(source, side)
    full = decode(source)
    return (int(full.shape[1]), int(full.shape[0])), decode(full, side)


class DetectionPredictor:
    """A saved detector: ``predict(images)`` -> boxes, scores and labels per image.

    Args:
        run_dir: the run's folder (``$MLSEL_HOME/runs/<run_id>``).
        device: ``cpu`` or ``cuda:N``.

    Raises:
        TrainingError: the folder holds no detector of this mlsel's format.
    """

    def __init__(self, run_dir: str | os.PathLike[str], device: str = "cpu") -> None:
        import torch

        from mlsel.trainers.detection.saved import load_detector

        self.folder = Path(run_dir)
        self.detector_, self.classes_ = load_detector(self.folder)
        self.device = torch.device(device)
        self.detector_.model.to(self.device)
        self.image_size_ = self.detector_.image_size

    def predict(
        self, images: Sequence[Any], *, min_score: float = 0.05, batch_size: int = 8
    ) -> list[dict[str, Any]]:
        """Detections of each image (a path, encoded bytes, a PIL image or an array).

        Returns:
            One dict per image: ``path`` (the path, or ``None``), ``boxes``
            (``[[x1, y1, x2, y2], ...]`` in the image's pixels), ``scores``, ``labels``
            (class names) and ``label_ids``, best score first.

        Raises:
            ConfigError: ``min_score`` outside [0, 1] or ``batch_size`` under 1.
            DatasetError: an image cannot be read.
        """
        import torch

        from mlsel.trainers.detection.evaluate import predict_images, to_pixels

        if not 0.0 <= float(min_score) <= 1.0:
            raise invalid_parameter("min_score", "predict", "a float in [0, 1]", min_score)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise invalid_parameter("batch_size", "predict", "an int in [1, inf)", batch_size)
        side = self.image_size_
        results: list[dict[str, Any]] = []
        for lo in range(0, len(images), batch_size):
            chunk = list(images[lo : lo + batch_size])
            decoded = [_size_and_pixels(image, side) for image in chunk]
            pixels = np.stack([p for _, p in decoded])
            batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
            found = predict_images(self.detector_.model, batch, self.device, batch_size)
            scaled = to_pixels(found, [size for size, _ in decoded], side)
            for source, (boxes, scores, labels) in zip(chunk, scaled, strict=True):
                keep = np.argsort(-scores, kind="stable")
                keep = keep[scores[keep] >= min_score]
                is_path = isinstance(source, str | os.PathLike)
                results.append(
                    {
                        "path": str(source) if is_path else None,
                        "boxes": boxes[keep].tolist(),
                        "scores": scores[keep].tolist(),
                        "labels": [self.classes_[int(i)] for i in labels[keep]],
                        "label_ids": labels[keep].tolist(),
                    }
                )
        return results
