"""Tasks of the corpus's second edition: class-folder datasets derived from a source's pool.

Each task takes ``classes`` classes of one pool (:mod:`benchmarks.bundle.pools`), the
largest first, a fixed balanced validation split of :data:`VAL_PER_CLASS` images a class
(the last ones of a seeded shuffle of each class, so every task of a source validates on
images no training split of it holds), and up to ``per_class`` training images a class.
Families, as in the first edition (:mod:`benchmarks.bundle.tasks`), now on colour images:

* ``subset``: k classes, n images a class;
* ``imbalance``: class sizes decaying geometrically (largest / smallest = ratio);
* ``resolution``: every image shrunk to a small side (and stored so);
* ``noise``, ``blur``: corruptions (``contrast`` and ``jpeg`` are known to
  :func:`derive_image` but not planned);
* ``grey``, ``hue``: colour changes (greyscale; hue rotated by a fixed angle).

Transparent images are composited on white first, as mlsel's decoder does. A task
records its source, family, parameters, seed and images per class in ``derivation.json``.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.bundle.pools import Pool

__all__ = ["VAL_PER_CLASS", "RealTask", "build_real_task", "plan_tasks"]

VAL_PER_CLASS = 15
DERIVATION_FILE = "derivation.json"
#: Most classes a task takes.
MAX_CLASSES = 10


@dataclass(frozen=True)
class RealTask:
    """How one task is derived from a pool (see the module docstring for families)."""

    source: str
    family: str
    classes: int
    per_class: int
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def name(self) -> str:
        extra = "".join(f"-{k}{v}" for k, v in sorted(self.params.items()))
        return f"{self.source}-{self.family}-c{self.classes}-n{self.per_class}{extra}"


def _room(sizes: list[int], k: int) -> int:
    """Training images a class can give when the ``k`` largest classes are taken."""
    return min(sizes[:k]) - VAL_PER_CLASS


def plan_tasks(
    pool: Pool, seed: int = 0, *, colour: bool = True, small: int = 32
) -> list[RealTask]:
    """The tasks of one source, shaped by what its pool holds (10 a colour source, 8 a
    grey one: ``grey`` and ``hue`` change nothing there).

    Subsets span 2 to 10 classes and 5 to as many images a class as the classes allow
    (at most 500); every other family uses the source's usual shape (up to 10 classes,
    up to 30 images a class) so that families compare within a source. ``small`` is the
    side of the resolution task (14 for the 28 px first-edition sources).
    """
    sizes = sorted(pool.sizes().values(), reverse=True)
    n_classes = min(len(sizes), MAX_CLASSES)
    if n_classes < 2:
        return []
    tasks: list[RealTask] = []
    src = pool.source

    def add(family: str, k: int, n: int, params: dict[str, Any] | None = None) -> None:
        n = min(n, _room(sizes, k))
        if n >= 5:
            spec = RealTask(src, family, k, n, params or {}, seed=seed + len(tasks))
            if spec.name not in {t.name for t in tasks}:
                tasks.append(spec)

    add("subset", 2, 20)
    add("subset", min(4, n_classes), 5)
    add("subset", n_classes, 10)
    add("subset", n_classes, 500)  # as large as the source allows
    usual = min(30, _room(sizes, n_classes))
    add("imbalance", n_classes, max(usual, 20), {"ratio": 8})
    add("resolution", n_classes, usual, {"side": small})
    add("noise", n_classes, usual, {"sigma": 40})
    add("blur", n_classes, usual, {"radius": 2})
    if colour:
        add("grey", n_classes, usual)
        add("hue", n_classes, usual, {"degrees": 120})
    return tasks


def _counts(spec: RealTask) -> list[int]:
    if spec.family != "imbalance":
        return [spec.per_class] * spec.classes
    ratio = float(spec.params["ratio"])
    return [
        max(1, round(spec.per_class / ratio ** (i / max(spec.classes - 1, 1))))
        for i in range(spec.classes)
    ]


def _on_white(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode == "RGBA":
            canvas = Image.new("RGB", image.size, (255, 255, 255))
            canvas.paste(image, mask=image.getchannel("A"))
            return canvas
        return image.convert("RGB")


def derive_image(image: Any, spec: RealTask, rng: random.Random) -> Any:
    """``image`` (an RGB PIL image) changed as ``spec``'s family says."""
    import numpy as np
    from PIL import Image, ImageFilter

    family, p = spec.family, spec.params
    if family == "resolution":
        side = int(p["side"])
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        return image
    if family == "noise":
        pixels = np.asarray(image, dtype=float)
        noise = np.random.default_rng(rng.randrange(2**32)).normal(0, p["sigma"], pixels.shape)
        return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))
    if family == "blur":
        return image.filter(ImageFilter.GaussianBlur(float(p["radius"])))
    if family == "contrast":
        pixels = np.asarray(image, dtype=float)
        mean = pixels.mean()
        out = mean + (pixels - mean) * float(p["factor"])
        return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    if family == "grey":
        return image.convert("L")
    if family == "hue":
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(int) + round(p["degrees"] * 256 / 360)) % 256
        return Image.fromarray(hsv, mode="HSV").convert("RGB")
    if family == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(p["quality"]))
        buffer.seek(0)
        return Image.open(buffer).convert("RGB")
    return image


def build_real_task(spec: RealTask, pool: Pool, root: Path) -> Path:
    """Write ``spec`` under ``root/<name>/`` as ``train/<class>/`` and ``val/<class>/``
    (kept when its ``derivation.json`` is there: a complete build)."""
    import shutil

    out = root / spec.name
    if (out / DERIVATION_FILE).is_file():
        return out
    partial = root / f".{spec.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    by_size = sorted(pool.classes, key=lambda c: (-len(pool.classes[c]), c))
    chosen = by_size[: spec.classes]
    rng = random.Random(f"{spec.name}/{spec.seed}")
    written: dict[str, int] = {}
    for cls, count in zip(chosen, _counts(spec), strict=True):
        images = list(pool.classes[cls])
        # the val split depends on the class alone: the same for every task of the source
        random.Random(f"{pool.source}/{cls}/val").shuffle(images)
        val, rest = images[-VAL_PER_CLASS:], images[:-VAL_PER_CLASS]
        rng.shuffle(rest)
        for split, paths in (("train", rest[:count]), ("val", val)):
            folder = partial / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for path in paths:
                derive_image(_on_white(path), spec, rng).save(folder / path.name)
        written[cls] = min(count, len(rest))
    record = {
        **asdict(spec),
        "name": spec.name,
        "train_counts": written,
        "train_images": sum(written.values()),
        "val_per_class": VAL_PER_CLASS,
    }
    (partial / DERIVATION_FILE).write_text(json.dumps(record, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out
