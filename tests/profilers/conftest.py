"""Tiny image datasets built in temporary folders for the profiler tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def save_image(
    path: Path,
    value: int | tuple[int, int, int] | np.ndarray,
    size: int = 16,
    fmt: str | None = None,
) -> Path:
    """Write a constant image (grey int or RGB tuple) or an array as an image file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(value, np.ndarray):
        image = Image.fromarray(value)
    elif isinstance(value, tuple):
        image = Image.new("RGB", (size, size), value)
    else:
        image = Image.new("L", (size, size), value)
    image.save(path, format=fmt)
    return path


@pytest.fixture
def make_classes(tmp_path: Path) -> Callable[..., Path]:
    """``make_classes({"cat": 5, "dog": 5}, root=None, split=None)``: distinct images."""
    counter = iter(range(10_000))

    def build(counts: dict[str, int], root: Path | None = None, split: str | None = None) -> Path:
        root = root or tmp_path / "data"
        for label, n in counts.items():
            folder = root / split / label if split else root / label
            for i in range(n):
                save_image(folder / f"{label}_{i}.png", next(counter) % 250, size=8 + i % 3)
        return root

    return build


@pytest.fixture
def save() -> Callable[..., Path]:
    """:func:`save_image`, for tests (test modules cannot import this conftest)."""
    return save_image
