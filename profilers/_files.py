"""Which files are images, and how to list them under a folder."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["IMAGE_EXTENSIONS", "is_image_name", "list_images"]

# Extensions Pillow decodes that people use for image datasets (lower case).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: Path, *, recursive: bool = True) -> tuple[list[Path], list[Path]]:
    """Image files and other (ignored) files under ``folder``, both sorted.

    Hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are skipped silently.
    """
    images: list[str] = []
    others: list[str] = []
    if recursive:
        walker = os.walk(folder)
    else:
        entries = [e.name for e in os.scandir(folder) if e.is_file()]
        walker = iter([(str(folder), [], entries)])
    for dirpath, dirnames, filenames in walker:
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            (images if is_image_name(name) else others).append(os.path.join(dirpath, name))
    # sorted as Paths sort (part by part), on strings: a dataset can hold 100k files
    images.sort(key=_parts)
    others.sort(key=_parts)
    return [Path(p) for p in images], [Path(p) for p in others]


def _parts(path: str) -> list[str]:
    return path.split(os.sep)
