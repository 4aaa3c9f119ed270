"""Decode every image once, to find the files the header pass lets through.

The reader opens headers only, so a truncated or damaged image passes it and fails later,
in every training trial. :func:`verify_images` decodes each image through the one decoder
(small: a JPEG through ``draft``) and names those that fail; :func:`drop_items` leaves
them out of a dataset, and :func:`bad_files_message` is the error to show when they are
neither removed nor skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

from mlsel.kernel.dataset import Dataset
from mlsel.kernel.errors import DatasetError
from mlsel.profilers._checks import name_some, name_with_reasons
from mlsel.profilers._parallel import Progress, parallel_map
from mlsel.profilers._scan import image_error
from mlsel.profilers.readers import _rel, fingerprint_items

__all__ = ["DRAFT_SIDE", "bad_files_message", "decode_file", "drop_items", "verify_images"]

DRAFT_SIDE = 64  # a JPEG is decoded at the smallest DCT scale keeping both sides >= this


def decode_file(path: str) -> str:
    """Decode one image as training will: ``""`` when it decodes, else the reason.

    It goes through the one decoder (:func:`mlsel.kernel.images.decode`), small, so that
    what it lets through is what training can read; the reasons read like the header
    pass's (:func:`~mlsel.profilers._scan.scan_file`).
    """
    from mlsel.kernel.images import DRAFT_MARGIN, decode

    try:
        decode(path, max(1, DRAFT_SIDE // DRAFT_MARGIN))
    except DatasetError as error:
        cause = error.__cause__
        if isinstance(cause, FileNotFoundError | PermissionError):
            return f"cannot read: {cause.strerror or cause}"
        return image_error(cause) if isinstance(cause, Exception) else str(error)
    return ""


def verify_images(dataset: Dataset, progress: Progress | None = None) -> list[tuple[str, str]]:
    """``(path, reason)`` of every image of ``dataset`` that cannot be fully decoded.

    Every image is decoded once, on every core (``progress`` sees the stage
    ``verify``); a JPEG decodes at a fraction of its size, so this costs about as much as
    the header pass. Paths are the items' (absolute) paths, in the items' order.
    """
    paths = [item.path for item in dataset.items]
    reasons = parallel_map(decode_file, paths, stage="verify", progress=progress)
    return [(path, reason) for path, reason in zip(paths, reasons, strict=True) if reason]


def _base(dataset: Dataset) -> str:
    """The folder the reader made item paths relative to (the manifest's or YAML's folder)."""
    root = Path(dataset.root)
    return str(root.parent if root.is_file() else root)


def _given_splits(dataset: Dataset, rels: list[str]) -> list[str | None]:
    """The split each item's layout gave, which the fingerprint hashes.

    A ``Dataset`` keeps the final splits only: ``test`` items were given ``test``; in a
    given split the others were given theirs; in a seeded one the layout gave ``train``
    or nothing to every other item, and the dataset's fingerprint tells which.
    """
    finals = [item.split for item in dataset.items]
    if dataset.split_source == "given":
        candidates: list[list[str | None]] = [list(finals)]
    else:
        candidates = [
            [s if s == "test" else "train" for s in finals],
            [s if s == "test" else None for s in finals],
        ]
    for given in candidates:
        if _fingerprint(dataset, rels, given, range(len(rels))) == dataset.fingerprint:
            return given
    return candidates[-1]  # built by hand or changed since: a stable best guess


def _fingerprint(
    dataset: Dataset, rels: list[str], given: list[str | None], keep: Iterable[int]
) -> str:
    items = dataset.items
    return fingerprint_items(
        dataset.task,
        ((rels[i], items[i].nbytes, items[i].label, given[i], items[i].boxes) for i in keep),
    )


def drop_items(dataset: Dataset, paths: Iterable[str], reason: str) -> Dataset:
    """``dataset`` without the items at ``paths``, re-fingerprinted, with one warning.

    The fingerprint is the one :func:`~mlsel.profilers.read_dataset` gives once those
    files are gone; the files join ``skipped``; a classification drops the classes left
    without an image. Paths are items' paths (absolute) or relative to the dataset;
    those not in the dataset are ignored.

    Args:
        dataset: a dataset from :func:`~mlsel.profilers.read_dataset`.
        paths: the files to leave out, e.g. those :func:`verify_images` names.
        reason: why, for the warning, e.g. ``"cannot be decoded"``.

    Raises:
        DatasetError: no image is left, or a classification keeps fewer than two classes.
    """
    base = _base(dataset)
    rels = [_rel(item.path, base) for item in dataset.items]
    wanted = set(paths)
    drop = [i for i, item in enumerate(dataset.items) if item.path in wanted or rels[i] in wanted]
    if not drop:
        return dataset
    dropped = set(drop)
    keep = [i for i in range(len(rels)) if i not in dropped]
    names = [rels[i] for i in drop]
    items = tuple(dataset.items[i] for i in keep)
    left = {item.label for item in items}
    classes = tuple(c for c in dataset.classes if c in left or dataset.task != "classify")
    if not items or (dataset.task == "classify" and len(classes) < 2):
        raise DatasetError(
            f"{dataset.root} keeps {len(items)} image(s) in {len(left)} class(es) once "
            f"{len(drop)} image(s) are left out ({reason}): {name_some(names, 3)}. Replace "
            "those files with readable images."
        )
    warning = f"{len(drop)} image(s) were left out ({reason}): {name_some(names)}."
    gone = [c for c in dataset.classes if c not in classes]
    if gone:
        warning = f"{warning[:-1]}; class(es) {name_some(gone)} have no image left."
    fingerprint = _fingerprint(dataset, rels, _given_splits(dataset, rels), keep)
    return dataclasses.replace(
        dataset,
        classes=classes,
        items=items,
        fingerprint=fingerprint,
        warnings=(*dataset.warnings, warning),
        skipped=(*dataset.skipped, *names),
    )


def bad_files_message(bad: Sequence[tuple[str, str]]) -> str:
    """The one-line error for images that cannot be decoded and were not skipped.

    Names at most three of the ``(path, reason)`` pairs, with the count of all.
    """
    return (
        f"{len(bad)} image file(s) cannot be decoded: {name_with_reasons(bad, 3)}. Remove or "
        "replace them, or pass --skip-bad-files to leave them out."
    )
