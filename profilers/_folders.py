"""Class-per-folder layouts: ``root/<class>/*.png`` or ``root/<split>/<class>/*.png``."""

from __future__ import annotations

from pathlib import Path

from mlsel.profilers._files import list_images
from mlsel.profilers._raw import SPLIT_ALIASES, RawDataset, RawItem

__all__ = ["looks_like_class_folders", "read_class_folders", "split_folders"]


def split_folders(root: Path) -> dict[str, Path]:
    """``{"train": root/train, ...}`` for the split folders directly under ``root``."""
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        split = SPLIT_ALIASES.get(child.name.lower())
        if child.is_dir() and split and split not in found:
            found[split] = child
    return found


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def looks_like_class_folders(root: Path) -> bool:
    """Whether some sub-folder (of ``root`` or of its split folders) holds images."""
    tops = list(split_folders(root).values()) or [root]
    for top in tops:
        for class_dir in _class_dirs(top):
            images, _ = list_images(class_dir)
            if images:
                return True
    return False


def read_class_folders(root: Path) -> RawDataset:
    """Read a class-per-folder dataset, with or without ``train/`` ``val/`` ``test/``.

    Images in nested folders below a class folder belong to that class. Images lying
    loose next to the class folders are ignored (and named in a warning).
    """
    splits = split_folders(root)
    tops: list[tuple[str | None, Path]] = list(splits.items()) or [(None, root)]
    items: list[RawItem] = []
    ignored: list[str] = []
    warnings: list[str] = []
    seen_classes: set[str] = set()
    nonempty: set[str] = set()
    for split, top in tops:
        loose, others = list_images(top, recursive=False)
        if loose:
            warnings.append(
                f"{len(loose)} image(s) lie directly in {top} and not in a class folder; "
                f"they are ignored (e.g. {loose[0].name})."
            )
        ignored.extend(str(p) for p in others)
        for class_dir in _class_dirs(top):
            if split is None and SPLIT_ALIASES.get(class_dir.name.lower()):
                continue
            seen_classes.add(class_dir.name)
            images, others = list_images(class_dir)
            ignored.extend(str(p) for p in others)
            if images:
                nonempty.add(class_dir.name)
            items.extend(RawItem(str(p), class_dir.name, split) for p in images)
    layout = "class-folders-split" if splits else "class-folders"
    return RawDataset(
        layout=layout,
        task="classify",
        base=str(root),
        classes=sorted(nonempty),
        items=items,
        warnings=warnings,
        empty_classes=sorted(seen_classes - nonempty),
        ignored_files=ignored,
    )
