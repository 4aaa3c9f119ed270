"""The seeded, stratified train/val split made when a dataset brings none."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

__all__ = ["seeded_split"]


def _order_key(seed: int, digest: str, rel: str) -> str:
    # Ordering by a keyed hash, not a shuffled index, keeps each file's split when
    # files are added or listed in another order. Hashing the content digest first
    # keeps exact duplicates next to each other, so they mostly share a split.
    return hashlib.blake2b(f"{seed}\0{digest}".encode(), digest_size=8).hexdigest() + rel


def seeded_split(
    entries: Sequence[tuple[str, str, str]], *, val_fraction: float, seed: int
) -> list[str]:
    """``train``/``val`` for each ``(rel_path, label, digest)``, stratified by label.

    Each class sends ``round(n * val_fraction)`` images to ``val``, at least one when it
    has two or more images and ``val_fraction > 0``, and always keeps one in ``train``.
    The result depends only on the seed and the files, never on listing order.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for index, (_, label, _) in enumerate(entries):
        groups[label].append(index)
    splits = ["train"] * len(entries)
    for members in groups.values():
        n = len(members)
        n_val = round(n * val_fraction)
        if val_fraction > 0 and n >= 2:
            n_val = max(1, min(n - 1, n_val))
        else:
            n_val = 0
        ordered = sorted(members, key=lambda i: _order_key(seed, entries[i][2], entries[i][0]))
        for index in ordered[:n_val]:
            splits[index] = "val"
    return splits
