"""Real detection tasks offline: real object images pasted onto real photographs.

Objects are colour emoji by Unicode subgroup and MATE icons by category folder;
backgrounds are crops of the photographs among the desktop wallpapers of two Debian
packages (``detect_sources.py`` reads them all). Each task is written in YOLO layout
(``images/{train,val,test}/*.jpg``, ``labels/{train,val,test}/*.txt``, ``data.yaml``) with
exact boxes: a box is the tight bounds of the object's visible pixels (alpha at least
``ALPHA_VISIBLE``, after scaling, occlusion by objects pasted later and the image
border). Objects and wallpapers are dealt to the splits once, so no test image shares an
object image or a wallpaper with training. ``data_cards/sources/`` holds a card per
package and ``data_cards/derivations/detect-real.md`` says how the tasks are made.

    .venv/bin/python benchmarks/detect_tasks.py --out benchmarks/out/detect/tasks
    .venv/bin/python benchmarks/detect_tasks.py --out /tmp/d --tasks large-two --images 8
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

from benchmarks import detect_sources as sources  # noqa: E402
from benchmarks.detect_sources import (  # noqa: E402
    ALPHA_VISIBLE,
    SPLITS,
    busyness,
    clutter_wallpapers,
    object_pool,
    scaled_object,
    visible_mask,
    wallpaper,
    wallpaper_splits,
)
from benchmarks.realimages_tasks import SourceMissing, package_version  # noqa: E402

#: Images per split of every task (``build_task(..., images=n)`` caps each at ``n``).
SPLIT_IMAGES = {"train": 120, "val": 40, "test": 40}
#: Bump when the built images change for a given seed.
BUILD_VERSION = 1
#: The task with the largest objects (at least a quarter of the image side), 2 classes.
EASIEST = "large-two"


@dataclass(frozen=True)
class DetectTask:
    """How one task's images are made (sizes are shares of the image side)."""

    name: str
    summary: str
    side: int
    classes: tuple[str, ...]
    scale: tuple[float, float]  # the object's longer side
    count: tuple[int, int]  # objects an image
    #: Least visible share of an object (its alpha pixels left after occlusion and the
    #: border); 1.0: objects never overlap and stay whole inside the image.
    min_visible: float = 1.0
    border_cut: bool = False  # objects may reach past the image border
    clutter: str = "any"  # "plain", "busy" or "any" background crops
    object_light: tuple[float, float] = (1.0, 1.0)  # brightness/contrast factors
    image_light: tuple[float, float] = (1.0, 1.0)


TASKS: dict[str, DetectTask] = {
    t.name: t
    for t in (
        DetectTask(
            "large-two",
            "2 classes, one or two large whole objects on plain photo regions (the easiest)",
            side=320,
            classes=("face", "ground-transport"),
            scale=(0.3, 0.5),
            count=(1, 2),
            clutter="plain",
        ),
        DetectTask(
            "emoji-four",
            "4 emoji classes, mid-sized, one to four apart",
            side=384,
            classes=("face", "mammal", "produce", "ground-transport"),
            scale=(0.14, 0.26),
            count=(1, 4),
        ),
        DetectTask(
            "icons-small",
            "5 icon categories, small and many",
            side=416,
            classes=("devices", "mimetypes", "places", "status", "apps"),
            scale=(0.06, 0.12),
            count=(3, 8),
        ),
        DetectTask(
            "emoji-crowd",
            "4 emoji classes in crowds: overlapping, cut by the border",
            side=384,
            classes=("face", "mammal", "bird", "clothing"),
            scale=(0.12, 0.24),
            count=(4, 8),
            min_visible=0.5,
            border_cut=True,
        ),
        DetectTask(
            "busy-six",
            "6 classes, emoji and icons, on the busiest photo regions",
            side=416,
            classes=("mammal", "produce", "sport", "devices", "mimetypes", "places"),
            scale=(0.08, 0.16),
            count=(2, 6),
            clutter="busy",
        ),
        DetectTask(
            "lighting-four",
            "4 classes under brightness and contrast jitter of objects and images",
            side=384,
            classes=("face", "produce", "devices", "places"),
            scale=(0.12, 0.24),
            count=(1, 4),
            min_visible=0.7,
            object_light=(0.5, 1.5),
            image_light=(0.6, 1.35),
        ),
        DetectTask(
            "mixed-eight",
            "8 classes, emoji and icons, small to mid-sized, some overlap",
            side=512,
            classes=(
                "face",
                "mammal",
                "bird",
                "produce",
                "ground-transport",
                "clothing",
                "devices",
                "mimetypes",
            ),  # fmt: skip
            scale=(0.07, 0.18),
            count=(2, 7),
            min_visible=0.7,
            border_cut=True,
            object_light=(0.8, 1.2),
            image_light=(0.85, 1.15),
        ),
    )
}


# --- sources and one image -----------------------------------------------------------


def check_sources(names: Sequence[str] | None = None) -> None:
    """Raise :class:`SourceMissing` (one line, naming the package) unless installed."""
    for name in names or TASKS:
        for package, path in sources.packages_for(TASKS[name].classes):
            if not path.exists():
                raise SourceMissing(
                    f"detection task {name} needs the Debian package {package} ({path} is "
                    f"missing): run `make system-packages` as root or `sudo apt-get install "
                    f"{package}`"
                )


def _background(task: DetectTask, split: str, rng: random.Random) -> tuple[Any, dict[str, Any]]:
    """A square crop of one of the split's wallpapers, resized to the task's side. A
    ``"plain"`` or ``"busy"`` task takes the plainest or busiest of six crops of a
    wallpaper from the plainer or busier half."""
    from PIL import Image

    name = rng.choice(clutter_wallpapers(split, task.clutter))
    photo = wallpaper(name)
    short = min(photo.size)
    candidates = []
    for _ in range(1 if task.clutter == "any" else 6):
        side = rng.randint(max(task.side, round(short * 0.35)), short)
        x, y = rng.randint(0, photo.width - side), rng.randint(0, photo.height - side)
        box = (x, y, x + side, y + side)
        candidates.append((busyness(photo, box), box))
    busy, box = sorted(candidates, reverse=task.clutter == "busy")[0]
    crop = photo.resize((task.side, task.side), Image.Resampling.LANCZOS, box=box)
    return crop, {"wallpaper": name, "crop": list(box), "busy": round(busy, 3)}


def _enhance(image: Any, brightness: float, contrast: float) -> Any:
    from PIL import Image, ImageEnhance

    rgb = image.convert("RGB")
    rgb = ImageEnhance.Contrast(ImageEnhance.Brightness(rgb).enhance(brightness)).enhance(contrast)
    if image.mode == "RGBA":
        rgb = Image.merge("RGBA", (*rgb.split(), image.getchannel("A")))
    return rgb


def _placement(
    task: DetectTask, mask: Any, placed: list[_Placed], rng: random.Random
) -> tuple[int, int, Any] | None:
    """(x, y, mask on the canvas) for a new object on top of ``placed``, or ``None``.

    Where objects may overlap, every other try puts the new one across a placed one, so
    that crowds form (random spots alone seldom overlap).
    """
    import numpy as np

    h, w = mask.shape
    full = int(mask.sum())
    cut = task.border_cut
    xs_ok = (-w // 2, task.side - w // 2) if cut else (0, task.side - w)
    ys_ok = (-h // 2, task.side - h // 2) if cut else (0, task.side - h)
    for attempt in range(40):
        if task.min_visible < 1.0 and placed and attempt % 2 == 0:
            bx0, by0, bx1, by1 = rng.choice(placed).box
            x = min(max(rng.randint(bx0 - w * 3 // 4, bx1 - w // 4), xs_ok[0]), xs_ok[1])
            y = min(max(rng.randint(by0 - h * 3 // 4, by1 - h // 4), ys_ok[0]), ys_ok[1])
        else:
            x, y = rng.randint(*xs_ok), rng.randint(*ys_ok)
        canvas = np.zeros((task.side, task.side), bool)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, task.side), min(y + h, task.side)
        canvas[y0:y1, x0:x1] = mask[y0 - y : y1 - y, x0 - x : x1 - x]
        if canvas.sum() < task.min_visible * full:
            continue
        if task.min_visible >= 1.0:
            ys, xs = np.nonzero(canvas)
            new = (xs.min() - 2, ys.min() - 2, xs.max() + 3, ys.max() + 3)  # a 2 px gap
            if any(_overlaps(new, p.box) for p in placed):
                continue
        elif any((p.visible & ~canvas).sum() < task.min_visible * p.full for p in placed):
            continue
        return x, y, canvas
    return None


def _overlaps(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclass
class _Placed:
    """An object pasted on an image: its class and which of its pixels still show."""

    cls: int
    visible: Any  # boolean canvas mask, updated as later objects cover it
    full: int  # its visible pixels before the border and other objects cut it
    box: tuple[int, int, int, int]  # the bounds it was placed with
    record: dict[str, Any]


def make_image(
    task: DetectTask, split: str, rng: random.Random
) -> tuple[Any, list[tuple[int, tuple[int, int, int, int]]], dict[str, Any]]:
    """(RGB image, [(class index, pixel box x0 y0 x1 y1)], record) of one task image."""
    image, record = _background(task, split, rng)
    placed: list[_Placed] = []
    for _ in range(rng.randint(*task.count)):
        cls = rng.randrange(len(task.classes))
        name, source = rng.choice(object_pool(task.classes[cls])[split])
        obj = scaled_object(source, round(rng.uniform(*task.scale) * task.side))
        light = (rng.uniform(*task.object_light), rng.uniform(*task.object_light))
        if light != (1.0, 1.0):
            obj = _enhance(obj, *light)
        mask = visible_mask(obj)
        spot = _placement(task, mask, placed, rng) if mask.any() else None
        if spot is None:
            continue
        x, y, canvas = spot
        for other in placed:
            other.visible &= ~canvas
        image.paste(obj, (x, y), obj)
        about = {"class": task.classes[cls], "object": name, "at": [x, y]}
        about |= {"size": list(obj.size), "light": [round(v, 4) for v in light]}
        placed.append(_Placed(cls, canvas, int(mask.sum()), _bounds(canvas), about))
    light = (rng.uniform(*task.image_light), rng.uniform(*task.image_light))
    if light != (1.0, 1.0):
        image = _enhance(image, *light)
    for p in placed:
        p.record["visible"] = round(float(p.visible.sum()) / p.full, 4)
    record.update(light=[round(v, 4) for v in light], objects=[p.record for p in placed])
    return image, [(p.cls, _bounds(p.visible)) for p in placed], record


def _bounds(mask: Any) -> tuple[int, int, int, int]:
    import numpy as np

    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def yolo_line(cls: int, box: tuple[int, int, int, int], side: int) -> str:
    """``class cx cy w h`` normalised to [0, 1], for the pixel box ``[x0, x1) x [y0, y1)``."""
    x0, y0, x1, y1 = box
    return (
        f"{cls} {(x0 + x1) / 2 / side:.6f} {(y0 + y1) / 2 / side:.6f} "
        f"{(x1 - x0) / side:.6f} {(y1 - y0) / side:.6f}"
    )


# --- one task ------------------------------------------------------------------------


def build_task(name: str, out_dir: Path, seed: int = 0, *, images: int | None = None) -> Path:
    """Write task ``name`` in YOLO layout to ``out_dir`` (replaced), the same for a seed.

    Image ``i`` of a split depends only on the task, the seed, the split and ``i``, so a
    smaller build (``images``: at most that many a split) holds the first images of the
    full one. Writes ``data.yaml``, ``images/``, ``labels/``, and ``derivation.json``
    (the task, the package versions, and where every object of every image came from).

    Raises:
        KeyError: ``name`` is not a task of :data:`TASKS`.
        SourceMissing: a source package is not installed.
    """
    import yaml

    task = TASKS[name]
    check_sources([name])
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {s: min(n, images) if images else n for s, n in SPLIT_IMAGES.items()}
    records: dict[str, list[dict[str, Any]]] = {}
    for split, n in counts.items():
        (tmp / "images" / split).mkdir(parents=True)
        (tmp / "labels" / split).mkdir(parents=True)
        records[split] = []
        for index in range(n):
            rng = random.Random(f"{name}/{seed}/{split}/{index}/v{BUILD_VERSION}")
            image, boxes, record = make_image(task, split, rng)
            stem = f"{split}-{index:04d}"
            image.save(tmp / "images" / split / f"{stem}.jpg", quality=92)
            lines = [yolo_line(cls, box, task.side) for cls, box in boxes]
            (tmp / "labels" / split / f"{stem}.txt").write_text("".join(f"{x}\n" for x in lines))
            records[split].append({"image": f"{stem}.jpg", **record})
    data = {
        "path": str(out_dir.resolve()),
        **{s: f"images/{s}" for s in SPLITS},
        "names": dict(enumerate(task.classes)),
    }
    (tmp / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    versions = {p: package_version(p) for p, _ in sources.packages_for(task.classes)}
    derivation = {
        "task": asdict(task),
        "seed": seed,
        "build_version": BUILD_VERSION,
        "alpha_visible": ALPHA_VISIBLE,
        "packages": versions,
        "wallpapers": wallpaper_splits(),
        "images": records,
    }
    (tmp / "derivation.json").write_text(json.dumps(derivation, indent=1))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/detect/tasks"))
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=None, help="at most this many a split")
    args = parser.parse_args(argv)
    try:
        check_sources(args.tasks)
    except SourceMissing as exc:
        parser.exit(1, f"error: {exc}\n")
    for name in args.tasks:
        start = time.perf_counter()
        folder = build_task(name, args.out / name, args.seed, images=args.images)
        boxes = sum(1 for p in folder.glob("labels/*/*.txt") for _ in p.open())
        mark = " (easiest)" if name == EASIEST else ""
        print(f"{name}{mark}: {boxes} boxes -> {folder} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
