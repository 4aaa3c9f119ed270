"""``read_dataset``: find the layout of a folder, read it, check it, split it.

Layouts (auto-detected in this order, or restricted by ``task``):

* ``yolo``: Ultralytics detection (``data.yaml``, ``images/``, ``labels/``);
* ``csv``: a manifest with ``path,label`` rows (the path given, or the one CSV in the
  folder whose header names a path and a label column);
* ``class-folders-split``: ``train/<class>/...``, ``val/<class>/...``, ``test/<class>/...``;
* ``class-folders``: ``<class>/...``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from mlsel.kernel.dataset import Box, Dataset, DatasetItem
from mlsel.kernel.errors import DatasetError, invalid_parameter
from mlsel.kernel.images import apply_pixel_cap
from mlsel.profilers._checks import (
    check_classes,
    check_duplicates,
    check_large_images,
    check_split_classes,
    name_with_reasons,
)
from mlsel.profilers._csv import find_manifest, read_csv_manifest
from mlsel.profilers._folders import looks_like_class_folders, read_class_folders
from mlsel.profilers._parallel import Progress, parallel_map
from mlsel.profilers._raw import RawDataset, RawItem
from mlsel.profilers._scan import FileInfo, scan_file
from mlsel.profilers._split import seeded_split
from mlsel.profilers._yolo import looks_like_yolo, read_yolo
from mlsel.profilers.fingerprint import dataset_fingerprint

__all__ = ["EXPECTED_LAYOUTS", "detect_layout", "fingerprint_items", "read_dataset"]

logger = logging.getLogger(__name__)

EXPECTED_LAYOUTS = (
    "Expected one of: class folders (DIR/<class>/*.jpg), class folders with splits "
    "(DIR/train/<class>/*.jpg, DIR/val/<class>/...), a YOLO detection dataset (DIR/data.yaml "
    "with images/ and labels/), or a CSV manifest with 'path,label' rows."
)
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def detect_layout(path: Path, task: str | None = None) -> str:
    """The layout name of ``path``; ``task`` restricts the candidates.

    Raises:
        DatasetError: nothing under ``path`` matches a layout (of that task).
    """
    if task not in (None, "classify", "detect"):
        raise DatasetError(f"The task must be 'classify' or 'detect'. Got {task!r} instead.")
    if not path.exists():
        raise DatasetError(f"The dataset path {path} does not exist. Check the path.")
    found: list[str] = []
    if task in (None, "detect") and looks_like_yolo(path):
        found.append("yolo")
    if task in (None, "classify") and not (task and looks_like_yolo(path)):
        # a manifest states its labels; it wins over the folder names around its images
        if path.is_file() and path.suffix.lower() == ".csv":
            found.append("csv")
        elif path.is_dir() and find_manifest(path) is not None:
            found.append("csv")
        elif path.is_dir() and looks_like_class_folders(path):
            found.append("class-folders")
    if found:
        return found[0]
    other = None
    if task == "classify" and looks_like_yolo(path):
        other = "a YOLO detection layout (use --task detect)"
    elif task == "detect" and path.is_dir() and looks_like_class_folders(path):
        other = "class folders, a classification layout (use --task classify)"
    hint = f" It looks like {other}." if other else ""
    raise DatasetError(
        f"{path} is not a{' ' + task if task else 'n image'} dataset mlsel can read.{hint} "
        f"{EXPECTED_LAYOUTS}"
    )


def _read_raw(path: Path, layout: str) -> RawDataset:
    if layout == "yolo":
        return read_yolo(path)
    if layout == "csv":
        manifest = path if path.is_file() else find_manifest(path)
        if manifest is None:  # detect_layout found it a moment ago
            raise DatasetError(f"No CSV manifest in {path}. {EXPECTED_LAYOUTS}")
        return read_csv_manifest(manifest)
    return read_class_folders(path)


def _dataset_name(root: Path) -> str:
    if root.is_dir():
        return root.name
    generic = ("manifest", "labels", "data", "dataset", "train")
    return root.parent.name if root.stem.lower() in generic else root.stem


def _rel(path: str, base: str) -> str:
    prefix = base.rstrip(os.sep) + os.sep
    if path.startswith(prefix):  # the usual case, without relpath's two abspath calls
        return path[len(prefix) :].replace(os.sep, "/")
    return os.path.relpath(path, base).replace(os.sep, "/")


def fingerprint_items(
    task: str, items: Iterable[tuple[str, int, str, str | None, tuple[Box, ...]]]
) -> str:
    """The fingerprint of ``(relative path, byte size, label, given split, boxes)`` items.

    The split is the one the layout gave (``None`` when it gave none), never a seeded
    one: the same files are the same dataset whatever the seed. ``read_dataset`` and
    ``drop_items`` both fingerprint through here.
    """
    entries = ((rel, size, label, split or "", boxes) for rel, size, label, split, boxes in items)
    return dataset_fingerprint(task, entries)


def read_dataset(
    path: str | os.PathLike[str],
    task: str | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    progress: Progress | None = None,
) -> Dataset:
    """Read an image dataset from disk into a checked, split, fingerprinted ``Dataset``.

    Every file is opened once (in parallel) to read its header and hash its bytes;
    files that are not readable images are skipped and named in a warning. When the
    dataset brings no ``val`` split, a stratified split seeded by ``seed`` sends
    ``val_fraction`` of each class to ``val`` (``test`` folders are kept as given).

    Args:
        path: a dataset folder, a YOLO data YAML or a CSV manifest.
        task: ``classify`` or ``detect`` to override auto-detection.
        seed: seed of the split made when none is given.
        val_fraction: share of each class sent to ``val`` by that split.
        progress: optional ``progress(stage, done, total)`` callback.

    Raises:
        DatasetError: the path is not a dataset, holds no readable image, or a
            classification dataset has fewer than two classes.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise invalid_parameter(
            "val_fraction", "read_dataset", "a float in [0, 1)", val_fraction, error=DatasetError
        )
    root = Path(path).expanduser().resolve()
    raw = _read_raw(root, detect_layout(root, task))
    if not raw.items:
        raise DatasetError(f"{root} holds no image files. {EXPECTED_LAYOUTS}")
    readable, skipped, warnings = _scan(raw, root, progress)
    classes, class_warnings = _classes(raw, readable, root)
    warnings += class_warnings
    rels = [_rel(item.path, raw.base) for item, _ in readable]
    labels = [item.label for item, _ in readable]
    given = [item.split for item, _ in readable]
    digests = [info.digest for _, info in readable]
    splits, has_val = _splits(rels, labels, given, digests, val_fraction, seed)
    if has_val and raw.task == "classify":
        warnings += check_split_classes(labels, splits)
    dup_warnings, _, _ = check_duplicates(list(zip(rels, splits, labels, digests, strict=True)))
    warnings += dup_warnings
    warnings += check_large_images([(i.width, i.height, i.format) for _, i in readable])
    fingerprint = fingerprint_items(
        raw.task,
        (
            (rels[i], info.nbytes, item.label, item.split, item.boxes)
            for i, (item, info) in enumerate(readable)
        ),
    )
    items = [
        DatasetItem(
            path=item.path,
            label=item.label,
            split=splits[i],
            boxes=item.boxes,
            width=info.width,
            height=info.height,
            format=info.format,
            nbytes=info.nbytes,
            digest=info.digest,
        )
        for i, (item, info) in enumerate(readable)
    ]
    order = sorted(range(len(items)), key=lambda i: (_SPLIT_ORDER[items[i].split], rels[i]))
    for warning in warnings:
        logger.warning("%s: %s", root.name, warning)
    return Dataset(
        root=str(root),
        name=_dataset_name(root),
        task=raw.task,
        layout=raw.layout,
        classes=tuple(classes),
        items=tuple(items[i] for i in order),
        fingerprint=fingerprint,
        split_source="given" if has_val else "seeded",
        data_yaml=raw.data_yaml,
        warnings=tuple(warnings),
        skipped=tuple(skipped),
        ignored=len(raw.ignored_files),
    )


def _scan(
    raw: RawDataset, root: Path, progress: Progress | None
) -> tuple[list[tuple[RawItem, FileInfo]], list[str], list[str]]:
    """Open every file once: ``(readable items with their header, skipped, warnings)``.

    Pillow's cap is raised to mlsel's here too, not only in the scanning workers, so that
    whatever opens these images later in this process (Ultralytics) accepts them quietly.
    """
    apply_pixel_cap()
    warnings = list(raw.warnings)
    infos: list[FileInfo] = parallel_map(
        scan_file, [item.path for item in raw.items], stage="scan", progress=progress
    )
    pairs = list(zip(raw.items, infos, strict=True))
    readable = [(item, info) for item, info in pairs if not info.error]
    bad = [(_rel(item.path, raw.base), info.error) for item, info in pairs if info.error]
    skipped = [rel for rel, _ in bad]
    if bad:
        warnings.append(
            f"{len(bad)} unreadable or corrupt image(s) were skipped: {name_with_reasons(bad)}."
        )
    if not readable:
        raise DatasetError(f"None of the {len(raw.items)} image files in {root} can be read.")
    if raw.ignored_files:
        warnings.append(
            f"{len(raw.ignored_files)} non-image file(s) were ignored "
            f"(e.g. {Path(raw.ignored_files[0]).name})."
        )
    return readable, skipped, warnings


def _classes(
    raw: RawDataset, readable: list[tuple[RawItem, FileInfo]], root: Path
) -> tuple[list[str], list[str]]:
    """The classes (a classification's: those with a readable image) and their warnings."""
    labels = [item.label for item, _ in readable]
    classes = list(raw.classes)
    empty = list(raw.empty_classes)
    if raw.task == "classify":
        classes = sorted(set(labels))
        empty += [c for c in raw.classes if c not in set(labels)]
    return classes, check_classes(str(root), raw.task, labels, sorted(set(empty)))


def _splits(
    rels: list[str],
    labels: list[str],
    given: list[str | None],
    digests: list[str],
    val_fraction: float,
    seed: int,
) -> tuple[list[str], bool]:
    """Each item's split, and whether the dataset brought its own ``val`` split.

    Items without a split (and ``train`` items when there is no ``val``) are split with a
    stratified, seeded split; ``test`` items stay as given.
    """
    has_val = "val" in given
    to_split = [i for i, s in enumerate(given) if s is None or (s == "train" and not has_val)]
    splits = [s or "train" for s in given]
    if to_split:
        made = seeded_split(
            [(rels[i], labels[i], digests[i]) for i in to_split],
            val_fraction=val_fraction,
            seed=seed,
        )
        for i, split in zip(to_split, made, strict=True):
            splits[i] = split
    return splits, has_val
