"""Large images: accepted up to the pixel cap, noted once per dataset, and a real
15,000 x 15,000 PNG profiled and trained on in bounded memory without a warning."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlsel.kernel import images
from mlsel.profilers import read_dataset
from mlsel.profilers._checks import check_large_images
from mlsel.profilers._scan import scan_file

PILLOW_DEFAULT_MAX = 1024**3 // 4 // 3


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(path: Path, width: int, height: int, colour_type: int = 2) -> Path:
    """A PNG that declares ``width x height`` but holds no pixel rows: only a header scan
    reads it (a decode fails), and it costs a few bytes whatever its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def test_the_scan_reads_a_15000_pixel_square_and_skips_what_is_over_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", PILLOW_DEFAULT_MAX)  # a fresh process
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        info = scan_file(str(_png_header(tmp_path / "scan.png", 15_000, 15_000)))
        assert info.error == "" and (info.width, info.height) == (15_000, 15_000)
        assert Image.MAX_IMAGE_PIXELS == images.PIXEL_CAP  # raised for whoever opens it next
        over = scan_file(str(_png_header(tmp_path / "over.png", 16_000, 16_000)))
        far = scan_file(str(_png_header(tmp_path / "far.png", 23_000, 23_000)))  # Pillow refuses
    cap = "mlsel's cap of 250 megapixels (mlsel.kernel.images.PIXEL_CAP); downscale it"
    assert over.error == f"too large: 16000x16000 is 256 megapixels, over {cap}"
    assert far.error == f"too large: over {cap}"


def test_large_images_are_noted_once_per_dataset(
    make_classes: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_classes({"a": 3, "b": 3})
    _png_header(root / "a" / "wide.png", 5_000, 4_000)  # 20 MP
    _png_header(root / "b" / "scan.png", 15_000, 15_000)
    _png_header(root / "b" / "tall.png", 4_000, 6_000, colour_type=6)  # RGBA, 24 MP
    _png_header(root / "b" / "small.png", 4_000, 4_000)  # exactly 16 MP: not large
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = read_dataset(root)
    noted = [w for w in data.warnings if "larger than" in w]
    assert noted == [
        "3 image(s) are larger than 16 MP (largest 15000x15000): they are decoded once and "
        "reduced; decoding them is slow the first time."
    ]
    small = make_classes({"c": 2, "d": 2}, root=tmp_path / "small")
    assert not any("larger than" in w for w in read_dataset(small).warnings)


def test_large_jpegs_are_not_noted_since_they_decode_drafted() -> None:
    assert check_large_images([(8_000, 6_000, "JPEG"), (100, 100, "PNG")]) == []
    assert check_large_images([(8_000, 6_000, "TIFF")])[0].startswith("1 image(s) are larger")


# --- one real 15,000 x 15,000 PNG, profiled and trained on in child processes ---

SIDE = 15_000
# The child's peak resident memory may reach 2.5 GiB. The image decodes to a
# 15,000 x 15,000 RGBA bitmap of 900 MB, held once (one large decode at a time; it is
# composited and reduced a band of rows at a time, a few MB); the rest is the process
# itself: about 120 MB for `mlsel profile`, about 1.1 GB for `mlsel train` (torch).
# Decoding it as before (RGBA, then a full RGB copy, then resized) would add 675 MB more.
PEAK_BOUND = int(2.5 * 2**30)

# Runs the CLI in this process, then prints its peak resident set (self and children).
_MEASURED = """
import resource, sys
sys.argv = ["mlsel", *sys.argv[1:]]
from mlsel.cli.app import main
try:
    main()
    status = 0
except SystemExit as stop:
    status = stop.code if isinstance(stop.code, int) else 1
scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, kB on Linux
# On Linux, ru_maxrss of RUSAGE_SELF keeps the high-water mark of the forked copy of the
# test process from before exec (as large as pytest has grown); VmHWM is this program's own.
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    with open("/proc/self/status") as handle:
        own = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))
except (OSError, StopIteration, ValueError):
    pass
peak = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(f"PEAK_RSS_BYTES={peak * scale}", file=sys.stderr)
sys.exit(status)
"""


def _huge_png(path: Path, side: int) -> Path:
    """A ``side x side`` RGBA PNG, transparent but for a red disc and a green band, written
    a row at a time (compression level 1): the whole bitmap never sits in memory here."""
    x = np.arange(side)
    radius, centre = side // 3, side // 2
    packer = zlib.compressobj(1)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)))
        for y in range(side):
            row = np.zeros((side, 4), dtype=np.uint8)
            row[(x - centre) ** 2 + (y - centre) ** 2 < radius**2] = (200, 30, 40, 255)
            if side // 10 <= y < side // 8:
                row[:] = (20, 160, 60, 128)
            data = packer.compress(b"\x00" + row.tobytes())  # filter 0, then the row
            if data:
                out.write(_chunk(b"IDAT", data))
        out.write(_chunk(b"IDAT", packer.flush()))
        out.write(_chunk(b"IEND", b""))
    return path


def _run_measured(args: list[str], env: dict[str, str]) -> tuple[str, str, int]:
    """``(stdout, stdout and stderr, peak resident bytes)`` of ``mlsel ARGS`` in a child."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    peak = re.search(r"PEAK_RSS_BYTES=(\d+)", done.stderr)
    assert peak is not None, output
    return done.stdout, output.replace(peak.group(0), ""), int(peak.group(1))


def _child_env(tmp_path: Path, name: str) -> dict[str, str]:
    """Offline, with its own home, machine cache and Ultralytics folder under tmp_path."""
    env = dict(os.environ)
    env.update(
        MLSEL_HOME=str(tmp_path / f"home-{name}"),
        MLSEL_CACHE_DIR=str(tmp_path / f"cache-{name}"),  # a cold decode in each child
        MLSEL_OFFLINE="1",
        MLSEL_NO_BUNDLED="1",
        YOLO_OFFLINE="1",
        YOLO_AUTOINSTALL="false",
        YOLO_CONFIG_DIR=str(tmp_path / f"yolo-{name}"),
        PYTHONWARNINGS="default",  # show any warning that is not silenced on purpose
    )
    return env


@pytest.mark.slow
def test_a_15000_pixel_square_png_profiles_and_trains_quietly_in_bounded_memory(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    _huge_png(root / "a" / "huge.png", SIDE)

    shown, profiled, profile_peak = _run_measured(
        ["profile", str(root), "--json", "--no-landmarkers"], _child_env(tmp_path, "profile")
    )
    _, trained, train_peak = _run_measured(
        [
            "train", str(root), "--arch", "small_cnn", "--no-pretrained",
            "--image-size", "32", "--epochs", "1", "--device", "cpu", "--json",
        ],
        _child_env(tmp_path, "train"),
    )  # fmt: skip
    print(f"peak RSS: profile {profile_peak / 2**20:.0f} MiB, train {train_peak / 2**20:.0f} MiB")
    for output in (profiled, trained):
        assert not re.search(r"\w*Warning\b|DecompressionBomb", output), output
    profile = json.loads(shown)
    noted = [w for w in profile["warnings"] if "larger than 16 MP" in w]
    assert noted == [
        "1 image(s) are larger than 16 MP (largest 15000x15000): they are decoded once and "
        "reduced; decoding them is slow the first time."
    ]
    assert profile["features"]["n_images"] == 9  # the huge image was read, and decoded:
    assert not [w for w in profile["warnings"] if "decode" in w and "larger than" not in w]
    assert profile_peak < PEAK_BOUND and train_peak < PEAK_BOUND
    cached = list((tmp_path / "cache-train" / "decoded").iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".png"  # its reduced copy, kept
