"""What a layout reader hands back before files are scanned, split and fingerprinted."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlsel.kernel.dataset import Box

__all__ = ["SPLIT_ALIASES", "RawDataset", "RawItem"]

# Folder names people give their splits, mapped onto train / val / test.
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


@dataclass
class RawItem:
    """One image as a layout lists it: absolute path, label, split if given, boxes."""

    path: str
    label: str
    split: str | None = None
    boxes: tuple[Box, ...] = ()


@dataclass
class RawDataset:
    """A layout's reading of a folder: items, classes, and what looked wrong."""

    layout: str
    task: str
    base: str
    classes: list[str]
    items: list[RawItem]
    warnings: list[str] = field(default_factory=list)
    data_yaml: str | None = None
    # class folders that hold no image (classification), kept to warn about them
    empty_classes: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
