"""Synthetic shapes: a classification set and a YOLO detection set with exact boxes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = [
    "SHAPES",
    "make_yolo_dirs",
    "write_data_yaml",
    "write_shapes",
    "write_shapes_detect",
    "yolo_label",
]

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")


def _polygon(kind: str, x0: int, y0: int, x1: int, y1: int) -> list[tuple[float, float]]:
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if kind == "triangle":
        return [(cx, y0), (x1, y1), (x0, y1)]
    if kind == "diamond":
        return [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _draw_mask(kind: str, side: int, box: tuple[int, int, int, int]):  # noqa: ANN202
    """An ``L`` mask of one shape inside ``box`` on a ``side`` x ``side`` canvas."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    x0, y0, x1, y1 = box
    if kind == "circle":
        draw.ellipse(box, fill=255)
    elif kind == "ring":
        width = max(2, (x1 - x0) // 5)
        draw.ellipse(box, outline=255, width=width)
    elif kind == "cross":
        bar = max(2, (x1 - x0) // 4)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        draw.rectangle((cx - bar // 2, y0, cx + bar // 2, y1), fill=255)
        draw.rectangle((x0, cy - bar // 2, x1, cy + bar // 2), fill=255)
    else:
        draw.polygon(_polygon(kind, *box), fill=255)
    return mask


def _background(rng: np.random.Generator, side: int):  # noqa: ANN202
    from PIL import Image

    base = rng.integers(0, 256, size=3)
    noise = rng.normal(0, 12, size=(side, side, 3))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _colour(rng: np.random.Generator, background) -> tuple[int, int, int]:  # noqa: ANN001
    bg = np.asarray(background).reshape(-1, 3).mean(axis=0)
    while True:  # a colour far enough from the background to be seen
        colour = rng.integers(0, 256, size=3)
        if np.abs(colour - bg).sum() > 150:
            return int(colour[0]), int(colour[1]), int(colour[2])


def write_shapes(out: Path, *, classes: int | None, per_class: int, size: int, seed: int) -> None:
    """One shape per image, in ``out/<shape>/<shape>_00000.png``."""
    rng = np.random.default_rng(seed)
    for kind in SHAPES[: classes or len(SHAPES)]:
        folder = out / kind
        folder.mkdir()
        for index in range(per_class):
            image = _background(rng, size)
            side = int(rng.integers(int(size * 0.35), int(size * 0.8)))
            x0 = int(rng.integers(0, size - side))
            y0 = int(rng.integers(0, size - side))
            mask = _draw_mask(kind, size, (x0, y0, x0 + side, y0 + side))
            image.paste(_colour(rng, image), mask=mask)
            image.save(folder / f"{kind}_{index:05d}.png", compress_level=1)


def make_yolo_dirs(out: Path) -> None:
    """``images/{train,val}`` and ``labels/{train,val}`` under ``out``."""
    for sub in ("images/train", "images/val", "labels/train", "labels/val"):
        (out / sub).mkdir(parents=True, exist_ok=True)


def yolo_label(cls: int, left: int, top: int, right: int, bottom: int, size: int) -> str:
    """One YOLO label line for the pixel box ``[left, right) x [top, bottom)``."""
    return (
        f"{cls} {(left + right) / 2 / size:.6f} {(top + bottom) / 2 / size:.6f} "
        f"{(right - left) / size:.6f} {(bottom - top) / size:.6f}"
    )


def write_data_yaml(out: Path, names: dict[int, str]) -> None:
    """The ``data.yaml`` of a YOLO set made by :func:`make_yolo_dirs` (absolute path)."""
    import yaml

    data = {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": names,
    }
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def write_shapes_detect(
    out: Path, *, classes: int | None, per_class: int, size: int, seed: int
) -> None:
    """A YOLO dataset: ``images/{train,val}``, ``labels/{train,val}``, ``data.yaml``.

    Each image holds one to three shapes that do not overlap; each box is the exact
    pixel extent of its drawn shape.
    """
    rng = np.random.default_rng(seed)
    kinds = SHAPES[: classes or len(SHAPES)]
    n_images = max(2, math.ceil(len(kinds) * per_class / 2))
    n_val = max(1, round(n_images * 0.2))
    make_yolo_dirs(out)
    for index in range(n_images):
        split = "val" if index < n_val else "train"
        image = _background(rng, size)
        taken: list[tuple[int, int, int, int]] = []
        lines: list[str] = []
        for _ in range(int(rng.integers(1, 4))):
            cls = int(rng.integers(0, len(kinds)))
            side = int(rng.integers(max(6, size // 8), size // 2))
            for _attempt in range(20):
                x0 = int(rng.integers(0, size - side))
                y0 = int(rng.integers(0, size - side))
                box = (x0, y0, x0 + side, y0 + side)
                if all(
                    box[2] < t[0] or box[0] > t[2] or box[3] < t[1] or box[1] > t[3] for t in taken
                ):
                    break
            else:
                continue
            taken.append(box)
            mask = _draw_mask(kinds[cls], size, box)
            image.paste(_colour(rng, image), mask=mask)
            ys, xs = np.nonzero(np.asarray(mask))
            bx0, bx1, by0, by1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            lines.append(yolo_label(cls, bx0, by0, bx1, by1, size))
        stem = f"shapes_{index:05d}"
        image.save(out / "images" / split / f"{stem}.png", compress_level=1)
        (out / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    write_data_yaml(out, dict(enumerate(kinds)))
