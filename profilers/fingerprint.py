"""The dataset fingerprint: a content hash stable across machines, copies and file order."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from mlsel.kernel.dataset import Box

__all__ = ["FINGERPRINT_LENGTH", "dataset_fingerprint"]

FINGERPRINT_LENGTH = 16


def _box_text(boxes: tuple[Box, ...]) -> str:
    return ";".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, x, y, w, h in boxes)


def dataset_fingerprint(
    task: str, entries: Iterable[tuple[str, int, str, str, tuple[Box, ...]]]
) -> str:
    """Hash of ``(relative path, byte size, label, given split, boxes)`` of every image.

    Paths are relative to the dataset folder with ``/`` separators, and the lines are
    sorted, so the hash does not depend on where the folder lives, on the operating
    system or on listing order. A split the reader made (seeded) is left out: the same
    files are the same dataset whatever the seed.

    Returns:
        16 hexadecimal characters.
    """
    lines = sorted(
        f"{rel}\t{size}\t{label}\t{split}\t{_box_text(boxes)}"
        for rel, size, label, split, boxes in entries
    )
    digest = hashlib.sha256(f"mlsel-dataset-v1\n{task}\n".encode())
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:FINGERPRINT_LENGTH]
