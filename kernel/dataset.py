"""The ``Dataset`` record: where a dataset is, its task, items, labels and splits."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Box", "Dataset", "DatasetItem"]

# A detection box as in YOLO label files: class index, then centre x, centre y, width,
# height, all normalised to [0, 1] by the image size.
Box = tuple[int, float, float, float, float]


@dataclass(frozen=True)
class DatasetItem:
    """One image. ``label`` is the class name (classification; ``""`` for detection).

    ``width``, ``height`` and ``format`` come from the image header, ``nbytes`` is the
    file size and ``digest`` a BLAKE2 hash of the bytes (finds exact duplicates).
    """

    path: str
    label: str
    split: str
    boxes: tuple[Box, ...] = ()
    # What the reader's header pass found (0 / "" when not scanned).
    width: int = 0
    height: int = 0
    format: str = ""
    nbytes: int = 0
    digest: str = ""


@dataclass(frozen=True)
class Dataset:
    """A dataset as read from disk.

    Attributes:
        root: absolute path of the dataset folder (or of the CSV manifest).
        name: human name (the folder name).
        task: ``classify`` or ``detect``.
        layout: ``class-folders``, ``class-folders-split``, ``yolo`` or ``csv``.
        classes: class names, sorted; their index is the label index everywhere.
        items: every readable image, with its split.
        fingerprint: content hash of file names, sizes and labels, stable across
            machines and file order.
        split_source: ``given`` (explicit train/val/test) or ``seeded`` (stratified,
            seeded split made by the reader).
        data_yaml: path of the YOLO ``data.yaml`` (detection), if any.
        warnings: problems found while reading.
        skipped: files that looked like images but could not be read (not in items).
        ignored: number of non-image files that were ignored.
    """

    root: str
    name: str
    task: str
    layout: str
    classes: tuple[str, ...]
    items: tuple[DatasetItem, ...]
    fingerprint: str
    split_source: str = "seeded"
    data_yaml: str | None = None
    warnings: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    ignored: int = 0

    def split(self, name: str) -> tuple[DatasetItem, ...]:
        """Items of one split (``train``, ``val`` or ``test``)."""
        return tuple(item for item in self.items if item.split == name)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_index(self, label: str) -> int:
        """Index of a class name in :attr:`classes`."""
        return self.classes.index(label)
