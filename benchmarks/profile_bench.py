"""Profiling speed: ``read_dataset`` + ``profile_dataset`` next to a plain decode loop.

Writes N JPEGs of 640x480 (default 2,000, 10 classes) to a temporary folder, then times,
in this one process and run:

* ``reference``: one process opens and fully decodes every image with Pillow;
* ``profile (no landmarkers)``: read + check + fingerprint + meta-features;
* ``profile (landmarkers)``: the same with every landmarker, the ONNX Runtime import and
  session included.

The ImageNet probes are exported to ONNX once per machine (with torch), the first time
a profile needs them. The benchmark makes that export in a fresh temporary cache before
the timed rows and reports its time on its own line: it is paid once, not per profile.

Prints a table and writes ``benchmarks/out/profile_bench.json``. Usage::

    .venv/bin/python benchmarks/profile_bench.py [--images 2000] [--repeats 3] [--keep DIR]
        [--out FILE]

Each row runs ``--repeats`` times, interleaved (reference, profile, profile with
landmarkers, then again), and the table shows each row's median; the first repeat pays
the imports. The ratios of every repeat against its own reference are printed too.
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
    base = np.stack(
        [
            np.sin(xx / freq[0] + phase[0]) * 60 + 120,
            np.cos(yy / freq[1] + phase[1]) * 60 + 120,
            np.sin((xx + yy) / freq[2] + phase[2]) * 60 + 110,
        ],
        axis=-1,
    )
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


def export_probes_once() -> float:
    """Seconds to export the ImageNet probes to ONNX in a subprocess (it imports torch,
    which must not be loaded in this process before the timed rows)."""
    import subprocess
    import sys

    code = (
        "from mlsel.profilers._probes import export_probes, probes_path; "
        "export_probes(probes_path())"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
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


def _median_run(runs: list[tuple[float, dict[str, float]]]) -> tuple[float, dict[str, float]]:
    """The run with the median time (the upper one of an even count)."""
    return sorted(runs, key=lambda run: run[0])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each row")
    parser.add_argument("--keep", type=Path, default=None, help="write the images here")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    from mlsel.profilers._landmarkers import DEEP_LANDMARK_CAP, PIXEL_LANDMARK_CAP
    from mlsel.profilers._parallel import cpu_workers
    from mlsel.profilers.profile import PIXEL_SAMPLE_CAP, PROFILER_VERSION

    root = args.keep or Path(tempfile.mkdtemp(prefix="mlsel-bench-"))
    cache = Path(tempfile.mkdtemp(prefix="mlsel-bench-cache-"))
    os.environ["MLSEL_CACHE_DIR"] = str(cache)
    try:
        print(f"writing {args.images} JPEGs of {WIDTH}x{HEIGHT} to {root} ...", flush=True)
        write_dataset(root, args.images)
        export = export_probes_once()
        paths = sorted(str(p) for p in root.rglob("*.jpg"))
        mb = sum(os.path.getsize(p) for p in paths) / 2**20
        names = (
            "reference: Pillow full decode, 1 process",
            "profile, no landmarkers",
            "profile, with landmarkers",
        )
        runs: dict[str, list[tuple[float, dict[str, float]]]] = {name: [] for name in names}
        features: dict[str, float] = {}
        # interleaved repeats: a burst of load from a neighbour hits every row alike
        for _ in range(args.repeats):
            runs[names[0]].append((reference(paths), {}))
            seconds, stages, _ = profile(root, landmarkers=False)
            runs[names[1]].append((seconds, stages))
            seconds, stages, features = profile(root, landmarkers=True)
            runs[names[2]].append((seconds, stages))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    n = len(paths)
    medians = {name: _median_run(times) for name, times in runs.items()}
    ref = medians[names[0]][0]
    print(
        f"\n{n} images, {mb:.0f} MB, {cpu_workers()} cores, median of {args.repeats} "
        "interleaved repeats"
    )
    print(
        f"once per machine: ImageNet probes exported to ONNX in {export:.2f} s "
        "(torch import included)"
    )
    print(f"{'method':<42} {'seconds':>8} {'images/s':>9} {'vs ref':>7}  each repeat vs its ref")
    rows = []
    for name in names:
        seconds, stages = medians[name]
        each = [r / s for (r, _), (s, _) in zip(runs[names[0]], runs[name], strict=True)]
        print(
            f"{name:<42} {seconds:8.2f} {n / seconds:9.0f} {ref / seconds:6.2f}x  "
            + " ".join(f"{v:.2f}x" for v in each)
        )
        rows.append(
            {
                "method": name,
                "seconds": round(seconds, 3),
                "images_per_s": round(n / seconds, 1),
                "speedup": round(ref / seconds, 2),
                "speedup_each_repeat": [round(v, 2) for v in each],
                "stages": {k: round(v, 3) for k, v in stages.items()},
            }
        )
    print(
        "stage end times (s) of the median run with landmarkers:",
        {k: round(v, 2) for k, v in medians[names[2]][1].items()},
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "images": n,
                "megabytes": round(mb, 1),
                "size": [WIDTH, HEIGHT],
                "cores": cpu_workers(),
                "machine": platform.platform(),
                "python": platform.python_version(),
                "profiler_version": PROFILER_VERSION,
                "repeats": args.repeats,
                "caps": {
                    "pixel_sample": PIXEL_SAMPLE_CAP,
                    "pixel_landmarkers": PIXEL_LANDMARK_CAP,
                    "deep_landmarkers": DEEP_LANDMARK_CAP,
                },
                "probes_export_seconds_once": round(export, 2),
                "rows": rows,
                "landmarkers": {
                    k: v
                    for k, v in features.items()
                    if k.startswith(("lm_", "imagenet")) and v == v
                },
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
