"""Decode a dataset once into in-memory uint8 tensors at the training resolution.

Decoding and resizing JPEG/PNG files dominates the cost of small-data training on CPU.
:class:`TensorCache` does it once per (dataset fingerprint, image size, split) and keeps
the result, so the epochs of a run and the trials of one search reuse it. Images are
decoded by :func:`mlsel.kernel.images.decode` (transparency on white), resized to
``size x size`` (as the few-shot study's ``Resize((224, 224))``) and kept as RGB uint8.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from mlsel.kernel.errors import DatasetError
from mlsel.kernel.images import decode

if TYPE_CHECKING:
    import numpy as np
    import torch

    from mlsel.kernel.dataset import Dataset
    from mlsel.trainers.embeddings import EmbeddingCache

__all__ = ["TensorCache", "decode_image", "decode_images"]

logger = logging.getLogger(__name__)


def decode_image(path: str, size: int) -> np.ndarray:
    """One image as an ``(size, size, 3)`` RGB uint8 array (bilinear resize).

    Decoded by :func:`mlsel.kernel.images.decode`, as prediction and the profilers are.

    Raises:
        DatasetError: the file cannot be read as an image or is over the pixel cap.
    """
    return decode(path, size)


def decode_images(paths: Sequence[str], size: int) -> torch.Tensor:
    """Decode ``paths`` in parallel threads into one ``(N, 3, size, size)`` uint8 tensor."""
    import numpy as np
    import torch

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def work(i: int) -> None:
        out[i] = decode_image(paths[i], size)

    workers = min(8, os.cpu_count() or 1, max(1, len(paths)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(len(paths))))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


class TensorCache:
    """Decoded splits of datasets, keyed by (fingerprint, image size, split), and the
    embeddings of frozen backbones (:attr:`embeddings`), which need no decoded split.

    Args:
        max_bytes: least-recently used entries are dropped past this total size.
        embeddings: the embedding cache (default: one on the machine cache's disk).
    """

    def __init__(
        self, max_bytes: int = 4 * 2**30, embeddings: EmbeddingCache | None = None
    ) -> None:
        from mlsel.trainers.embeddings import EmbeddingCache

        self.max_bytes = max_bytes
        self.embeddings = embeddings if embeddings is not None else EmbeddingCache()
        self._entries: OrderedDict[tuple[str, int, str], tuple[torch.Tensor, torch.Tensor]] = (
            OrderedDict()
        )
        self.hits_ = 0
        self.misses_ = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached image tensors."""
        return sum(images.numel() for images, _ in self._entries.values())

    def get(
        self, dataset: Dataset, image_size: int, split: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images uint8 (N, 3, S, S), labels int64 (N,))`` of one split of ``dataset``.

        Labels index ``dataset.classes``.

        Raises:
            DatasetError: the split is empty or an image cannot be decoded.
        """
        import torch

        key = (dataset.fingerprint, int(image_size), split)
        if key in self._entries:
            self.hits_ += 1
            self._entries.move_to_end(key)
            return self._entries[key]
        self.misses_ += 1
        items = dataset.split(split)
        if not items:
            raise DatasetError(
                f"Dataset {dataset.name!r} has no images in its {split!r} split; training needs "
                "both a train and a val split. Add images or let the reader split the data."
            )
        index = {name: i for i, name in enumerate(dataset.classes)}
        try:
            labels = torch.tensor([index[item.label] for item in items], dtype=torch.int64)
        except KeyError as exc:
            raise DatasetError(
                f"Item label {exc.args[0]!r} is not one of the dataset's classes "
                f"{list(dataset.classes)}."
            ) from None
        images = decode_images([item.path for item in items], image_size)
        logger.debug(
            "decoded %d %s images of %s at %d px", len(items), split, dataset.name, image_size
        )
        self._entries[key] = (images, labels)
        while len(self._entries) > 1 and self.nbytes > self.max_bytes:
            self._entries.popitem(last=False)
        return images, labels
