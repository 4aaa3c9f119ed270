"""Checks on a read dataset: class counts, corrupt files, duplicates, leakage, large images."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from mlsel.kernel.errors import DatasetError
from mlsel.kernel.images import LARGE_PIXELS

__all__ = [
    "check_classes",
    "check_duplicates",
    "check_large_images",
    "check_split_classes",
    "name_some",
    "name_with_reasons",
]


def name_some(names: Sequence[str], limit: int = 5) -> str:
    """``"a, b, c"`` or ``"a, b, c and 7 more"``."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def name_with_reasons(bad: Sequence[tuple[str, str]], limit: int = 3) -> str:
    """``"a.png (reason), b.png (reason) and 7 more"`` of ``(name, reason)`` pairs."""
    return name_some([f"{name} ({reason})" for name, reason in bad], limit)


def check_classes(
    root: str, task: str, labels: Sequence[str], empty_classes: Sequence[str]
) -> list[str]:
    """Warnings about class sizes; an error when classification has one class only.

    Raises:
        DatasetError: fewer than two classes hold images (classification).
    """
    warnings: list[str] = []
    counts = Counter(labels)
    if empty_classes:
        warnings.append(
            f"{len(empty_classes)} class folder(s) hold no readable image and are left out: "
            f"{name_some(list(empty_classes))}."
        )
    if task != "classify":
        return warnings
    if len(counts) < 2:
        found = next(iter(counts), None)
        raise DatasetError(
            f"A classification dataset needs at least two classes with images; {root} has "
            f"{len(counts)}{f' ({found!r})' if found else ''}. Add a folder of images for "
            "each other class, or pass --task detect if this is a detection dataset."
        )
    singles = sorted(label for label, n in counts.items() if n == 1)
    if singles:
        warnings.append(
            f"{len(singles)} class(es) have a single image and cannot appear in both train "
            f"and val: {name_some(singles)}. Add images or expect a noisy score."
        )
    return warnings


def check_split_classes(labels: Sequence[str], splits: Sequence[str]) -> list[str]:
    """Warnings about classes a given split leaves out of training or of scoring.

    A class with ``val``/``test`` images but none in ``train`` cannot be learnt; one
    with ``train`` images but none in ``val`` cannot be scored.
    """
    in_split: dict[str, set[str]] = defaultdict(set)
    for label, split in zip(labels, splits, strict=True):
        in_split[split].add(label)
    unlearnt = sorted((in_split["val"] | in_split["test"]) - in_split["train"])
    unscored = sorted(in_split["train"] - in_split["val"])
    warnings: list[str] = []
    if unlearnt:
        warnings.append(
            f"{len(unlearnt)} class(es) have val/test images but no train image, so they "
            f"cannot be learnt: {name_some(unlearnt)}. Add train images of them or remove them."
        )
    if unscored:
        warnings.append(
            f"{len(unscored)} class(es) have train images but no val image, so they cannot "
            f"be scored: {name_some(unscored)}. Move some of their images to val."
        )
    return warnings


def check_duplicates(
    entries: Sequence[tuple[str, str, str, str]],
) -> tuple[list[str], int, int]:
    """Find exact duplicates among ``(rel_path, split, label, digest)``.

    Returns:
        warnings, the number of files that duplicate an earlier file, and the number of
        those that sit in another split than their twin (leakage).
    """
    by_digest: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for rel, split, label, digest in entries:
        if digest:
            by_digest[digest].append((rel, split, label))
    duplicates = leaked = 0
    leak_examples: list[str] = []
    conflicts: list[str] = []
    for group in by_digest.values():
        if len(group) < 2:
            continue
        duplicates += len(group) - 1
        splits = {s for _, s, _ in group}
        if len(splits) > 1:
            leaked += len(group) - 1
            leak_examples.append(" = ".join(sorted(r for r, _, _ in group)[:2]))
        if len({label for _, _, label in group}) > 1:
            conflicts.append(" = ".join(sorted(r for r, _, _ in group)[:2]))
    warnings: list[str] = []
    if leaked:
        warnings.append(
            f"Leakage: {leaked} exact duplicate image(s) sit in more than one split, so the "
            f"validation score is optimistic: {name_some(leak_examples, 3)}. Remove the copies."
        )
    elif duplicates:
        warnings.append(f"{duplicates} exact duplicate image(s) within the same split.")
    if conflicts:
        warnings.append(
            f"{len(conflicts)} duplicate image(s) carry different labels: "
            f"{name_some(conflicts, 3)}."
        )
    return warnings, duplicates, leaked


def check_large_images(headers: Sequence[tuple[int, int, str]]) -> list[str]:
    """One warning, for the whole dataset, about its large images that are not JPEGs.

    Such an image (over :data:`~mlsel.kernel.images.LARGE_PIXELS`) has no reduced decode
    like a JPEG's draft: the decoder reads it whole once, then keeps a reduced copy.

    Args:
        headers: ``(width, height, format)`` of every readable image.
    """
    large = [(w, h) for w, h, fmt in headers if fmt != "JPEG" and w * h > LARGE_PIXELS]
    if not large:
        return []
    width, height = max(large, key=lambda size: size[0] * size[1])
    return [
        f"{len(large)} image(s) are larger than {LARGE_PIXELS / 1e6:.3g} MP (largest "
        f"{width}x{height}): they are decoded once and reduced; decoding them is slow the "
        "first time."
    ]
