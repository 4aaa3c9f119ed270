"""Profiling speed: ``read_dataset`` + ``profile_dataset`` next to a plain decode loop.

Writes N JPEGs of 640x480 (default 2,000, 10 classes) to a temporary folder, then times,
in this one process and run:

* ``reference``: one process opens and fully decodes every image with Pillow;
* ``profile (no landmarkers)``: read + check + fingerprint + meta-features;
* ``profile (landmarkers)``: the same with every landmarker, torch import included.

Prints a table and writes ``benchmarks/out/profile_bench.json``. Usage::

    .venv/bin/python benchmarks/profile_bench.py [--images 2000] [--keep DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent / "out" / "profile_bench.json"
WIDTH, HEIGHT = 640, 480


def _write_one(task: tuple[str, int, int]) -> None:
    """A photo-like JPEG: smooth colour fields, a few shapes, sensor noise."""
    from PIL import ImageDraw

    path, label, index = task
    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3)
    freq = rng.uniform(20, 120, 3) + 10 * label
    base = np.stack([np.sin(xx / freq[0] + phase[0]) * 60 + 120,
                     np.cos(yy / freq[1] + phase[1]) * 60 + 120,
                     np.sin((xx + yy) / freq[2] + phase[2]) * 60 + 110], axis=-1)
    pixels = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = int(rng.integers(0, WIDTH - 100)), int(rng.integers(0, HEIGHT - 100))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x, y, x + 40 + 8 * label, y + 60), fill=colour)
    image.save(path, quality=90)


def write_dataset(root: Path, n_images: int, n_classes: int = 10) -> None:
    tasks = []
    for index in range(n_images):
        label = index % n_classes
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        tasks.append((str(folder / f"img_{index:05d}.jpg"), label, index))
    with Pool() as pool:
        pool.map(_write_one, tasks, chunksize=32)


def reference(paths: list[str]) -> float:
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            image.load()
    return time.perf_counter() - start


def profile(root: Path, landmarkers: bool) -> tuple[float, dict[str, float], dict[str, float]]:
    from mlsel.profilers import read_dataset
    from mlsel.profilers.profile import profile_dataset

    start = time.perf_counter()
    stages: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        stages[stage] = time.perf_counter() - start

    data = read_dataset(root, progress=progress)
    result = profile_dataset(data, landmarkers=landmarkers, progress=progress)
    return time.perf_counter() - start, stages, dict(result.features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--keep", type=Path, default=None, help="write the images here")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args()
    from mlsel.profilers._landmarkers import DEEP_LANDMARK_CAP, PIXEL_LANDMARK_CAP
    from mlsel.profilers._parallel import cpu_workers
    from mlsel.profilers.profile import PIXEL_SAMPLE_CAP, PROFILER_VERSION

    root = args.keep or Path(tempfile.mkdtemp(prefix="mlsel-bench-"))
    try:
        print(f"writing {args.images} JPEGs of {WIDTH}x{HEIGHT} to {root} ...", flush=True)
        write_dataset(root, args.images)
        paths = sorted(str(p) for p in root.rglob("*.jpg"))
        mb = sum(os.path.getsize(p) for p in paths) / 2**20
        ref = reference(paths)
        fast, fast_stages, _ = profile(root, landmarkers=False)
        full, full_stages, features = profile(root, landmarkers=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    n = len(paths)
    rows = [
        ("reference: Pillow full decode, 1 process", ref, {}),
        ("profile, no landmarkers", fast, fast_stages),
        ("profile, with landmarkers", full, full_stages),
    ]
    print(f"\n{n} images, {mb:.0f} MB, {cpu_workers()} cores, torch imported by the last row")
    print(f"{'method':<42} {'seconds':>8} {'images/s':>9} {'vs ref':>7}")
    for name, seconds, _ in rows:
        print(f"{name:<42} {seconds:8.2f} {n / seconds:9.0f} {ref / seconds:6.2f}x")
    print("stage end times (s), with landmarkers:",
          {k: round(v, 2) for k, v in full_stages.items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "images": n, "megabytes": round(mb, 1), "size": [WIDTH, HEIGHT],
        "cores": cpu_workers(), "machine": platform.platform(),
        "python": platform.python_version(), "profiler_version": PROFILER_VERSION,
        "caps": {"pixel_sample": PIXEL_SAMPLE_CAP, "pixel_landmarkers": PIXEL_LANDMARK_CAP,
                 "deep_landmarkers": DEEP_LANDMARK_CAP},
        "rows": [{"method": name, "seconds": round(s, 3), "images_per_s": round(n / s, 1),
                  "speedup": round(ref / s, 2), "stages": {k: round(v, 3) for k, v in st.items()}}
                 for name, s, st in rows],
        "landmarkers": {k: v for k, v in features.items()
                        if k.startswith(("lm_", "imagenet")) and v == v},
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
