"""The parity check of an export: its own ``predict.Model`` against the trained model."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "PARITY_LIMIT",
    "PARITY_TOLERANCE",
    "Parity",
    "compare",
    "load_predict_module",
    "parity_sample",
    "synthetic_images",
]

#: Largest absolute difference of a probability the export may show.
PARITY_TOLERANCE = 1e-4

#: Most validation images the check runs on (evenly spaced over the split when more).
PARITY_LIMIT = 512


@dataclass(frozen=True)
class Parity:
    """How the export's predictions compare with the trained model's."""

    images: int
    source: str  # "validation images", or what stood in for them
    synthetic: bool
    top1_agreement: float
    max_abs_diff: float
    tolerance: float = PARITY_TOLERANCE

    @property
    def passed(self) -> bool:
        return (
            self.images > 0 and self.top1_agreement == 1.0 and (self.max_abs_diff <= self.tolerance)
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def describe(self) -> str:
        return (
            f"{self.images} {self.source}: top-1 agreement {self.top1_agreement:.4f}, "
            f"max probability difference {self.max_abs_diff:.2e} (tolerance {self.tolerance:g})"
        )


def load_predict_module(folder: Path) -> ModuleType:
    """The ``predict.py`` of an export folder, imported by path under a unique name."""
    path = Path(folder) / "predict.py"
    name = f"mlsel_export_predict_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def parity_sample(images: Sequence[Any], limit: int = PARITY_LIMIT) -> list[Any]:
    """At most ``limit`` of ``images``, evenly spaced (all of them when fewer)."""
    items = list(images)
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def synthetic_images(folder: Path, count: int = 8) -> list[Path]:
    """``count`` small images in several modes and shapes (seeded), written to ``folder``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    modes = ("RGB", "RGBA", "L", "P", "RGB", "LA", "RGB", "RGB")
    paths = []
    for i in range(count):
        width, height = int(rng.integers(24, 160)), int(rng.integers(24, 160))
        mode = modes[i % len(modes)]
        pixels = rng.integers(0, 256, size=(height, width, 4), dtype=np.uint8)
        image = Image.fromarray(pixels).convert(mode)
        path = folder / f"synthetic-{i}.png"
        image.save(path)
        paths.append(path)
    return paths


def compare(
    reference: Callable[[list[Any]], Any],
    exported: Callable[[list[Any]], Any],
    images: Sequence[Any],
    *,
    source: str,
    synthetic: bool,
) -> Parity:
    """Run both predictors on ``images`` and compare their probabilities."""
    import numpy as np

    items = list(images)
    want = np.asarray(reference(items), dtype=np.float64)
    got = np.asarray(exported(items), dtype=np.float64)
    if want.shape != got.shape:
        raise ValueError(f"the export gives shape {got.shape}, the model {want.shape}")
    n = len(items)
    agreement = float(np.mean(want.argmax(1) == got.argmax(1))) if n else 0.0
    diff = float(np.max(np.abs(want - got))) if n else 0.0
    return Parity(n, source, synthetic, agreement, diff)
