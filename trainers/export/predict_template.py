"""Predict with this exported mlsel model. Needs only onnxruntime, numpy and Pillow.

    python predict.py IMAGES_OR_FOLDERS... [--top-k 3] [--json]

    from predict import Model
    model = Model()                      # the folder this file is in
    model.predict(["cat.jpg"], top_k=3)  # [[{"label": ..., "probability": ...}, ...]]

``model.onnx`` takes the images decoded and resized (uint8, ``(N, S, S, 3)``, RGB) and
does the rest of the preprocessing itself (scaling, normalisation, channels first); the
decoder below is mlsel's own, copied verbatim, so an image is decoded here exactly as it
was in training (transparency on white, 16-bit scaled, JPEG draft, bilinear resize). An
Ultralytics classifier (``preprocessing.json``: ``"transform": "ultralytics-classify"``)
decodes with :func:`decode_ultralytics` instead, as Ultralytics' own predictor does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mlsel.kernel._decode import (  # mlsel-export: decoder
    ImageError,
    apply_pixel_cap,
    check_size,
    decode,
    describe,
    load_pixels,
    open_image,
    quiet,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageError",
    "Model",
    "decode",
    "decode_ultralytics",
    "image_files",
    "main",
]

#: The file suffixes a folder is searched for (case-insensitive).
IMAGE_SUFFIXES = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
)

#: The decoding each ``preprocessing.json`` ``transform`` names (absent: ``"mlsel"``).
TRANSFORMS = ("mlsel", "ultralytics-classify")

_RESAMPLING = {"nearest": 0, "bilinear": 2, "bicubic": 3}  # PIL.Image.Resampling values


def decode_ultralytics(image: Any, size: int, shortest_edge: int, interpolation: str) -> Any:
    """``image`` as ``(size, size, 3)`` uint8 RGB, as Ultralytics' classification
    predictor prepares it: upright by EXIF, 16-bit integers by their high byte, other modes
    converted to RGB (alpha dropped, as OpenCV reads a file), the shortest edge resized to
    ``shortest_edge`` (the longer edge truncated), a centre crop of ``size``.

    Raises:
        ImageError: the input is not a readable image, or is over the pixel cap.
    """
    import numpy as np
    from PIL import Image, ImageOps

    size, shortest_edge = check_size(size), check_size(shortest_edge)
    apply_pixel_cap()
    name = describe(image)
    with quiet():
        opened, owned = open_image(image, name, None)
        try:
            if owned:
                load_pixels(opened, name)
            upright = ImageOps.exif_transpose(opened)
            if upright.mode.startswith("I;16"):  # as Ultralytics scales a PIL image
                high = np.asarray(upright).astype(np.int64) >> 8
                upright = Image.fromarray(np.clip(high, 0, 255).astype(np.uint8))
            rgb = upright if upright.mode == "RGB" else upright.convert("RGB")
        finally:
            if owned:
                opened.close()
    # torchvision's Resize(int) and CenterCrop on a PIL image, step for step
    width, height = rgb.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest_edge, int(shortest_edge * long / short)
    new = (new_short, new_long) if width <= height else (new_long, new_short)
    if new != rgb.size:
        rgb = rgb.resize(new, _RESAMPLING[interpolation])
    if new[0] < size or new[1] < size:
        padded = Image.new("RGB", (max(size, new[0]), max(size, new[1])))
        padded.paste(rgb, ((max(size, new[0]) - new[0]) // 2, (max(size, new[1]) - new[1]) // 2))
        rgb, new = padded, padded.size
    top, left = int(round((new[1] - size) / 2.0)), int(round((new[0] - size) / 2.0))
    if (left, top, new[0], new[1]) != (0, 0, size, size):
        rgb = rgb.crop((left, top, left + size, top + size))
    return np.asarray(rgb, dtype=np.uint8)


class Model:
    """The exported classifier: one ONNX Runtime session over ``model.onnx``.

    Args:
        folder: the export folder (default: the folder this file is in).
        providers: ONNX Runtime execution providers (default: the CPU).
    """

    def __init__(
        self, folder: str | Path | None = None, providers: list[str] | None = None
    ) -> None:
        import onnxruntime

        self.folder = Path(folder) if folder is not None else Path(__file__).resolve().parent
        self.metadata: dict[str, Any] = json.loads((self.folder / "metadata.json").read_text())
        self.classes: list[str] = list(json.loads((self.folder / "classes.json").read_text()))
        preprocessing = json.loads((self.folder / "preprocessing.json").read_text())
        self.image_size: int = int(preprocessing["image_size"])
        self.transform: str = preprocessing.get("transform", "mlsel")
        if self.transform not in TRANSFORMS:
            raise ValueError(
                f"{self.folder / 'preprocessing.json'} asks for the transform "
                f"{self.transform!r}; this predict.py knows {list(TRANSFORMS)}. Export again."
            )
        self._resize = preprocessing.get("resize")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        self.session = onnxruntime.InferenceSession(
            str(self.folder / "model.onnx"),
            options,
            providers=providers or ["CPUExecutionProvider"],
        )
        self._input = self.session.get_inputs()[0].name

    def decode(self, image: Any) -> Any:
        """One image as the uint8 ``(S, S, 3)`` RGB array ``model.onnx`` takes, decoded
        as the trained model's own predictor decodes it."""
        if self.transform == "ultralytics-classify":
            return decode_ultralytics(
                image,
                self.image_size,
                int(self._resize["shortest_edge"]),
                self._resize["interpolation"],
            )
        return decode(image, self.image_size)

    def probabilities(self, pixels: Any) -> Any:
        """Class probabilities of decoded images: uint8 ``(N, S, S, 3)`` -> ``(N, C)``."""
        import numpy as np

        return self.session.run(None, {self._input: np.ascontiguousarray(pixels, np.uint8)})[0]

    def predict_proba(self, images: Sequence[Any], batch_size: int = 32) -> Any:
        """Class probabilities ``(N, C)``, columns in :attr:`classes` order.

        Args:
            images: paths, encoded bytes or PIL images.
            batch_size: images decoded and run at once.

        Raises:
            ImageError: an input is not a readable image (naming it).
        """
        import numpy as np

        out = []
        for lo in range(0, len(images), batch_size):
            batch = [self.decode(image) for image in images[lo : lo + batch_size]]
            out.append(self.probabilities(np.stack(batch)))
        if not out:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return np.concatenate(out)

    def predict(
        self, images: Sequence[Any], top_k: int = 1, batch_size: int = 32
    ) -> list[list[dict[str, Any]]]:
        """The ``top_k`` labels of each image, best first: ``{"label", "probability"}``."""
        return [self.top(row, top_k) for row in self.predict_proba(images, batch_size)]

    def top(self, probabilities: Any, top_k: int = 1) -> list[dict[str, Any]]:
        """The ``top_k`` labels of one row of probabilities, best first."""
        import numpy as np

        order = np.argsort(-np.asarray(probabilities), kind="stable")[: max(1, top_k)]
        return [{"label": self.classes[i], "probability": float(probabilities[i])} for i in order]


def image_files(paths: Sequence[str | Path]) -> Iterator[Path]:
    """Each file given, and the image files under each folder given: recursive, hidden
    files and folders skipped, sorted part by part (as ``mlsel predict`` walks them)."""
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            yield path
            continue
        found: list[str] = []
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            found += [
                os.path.join(folder, name)
                for name in names
                if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
            ]
        yield from (Path(p) for p in sorted(found, key=lambda p: p.split(os.sep)))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (1 when some input was unreadable)."""
    import numpy as np

    parser = argparse.ArgumentParser(description="Predict labels of images with this model.")
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("--top-k", type=int, default=1, help="labels per image (default 1)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--batch-size", type=int, default=32, help="images run at once")
    args = parser.parse_args(argv)
    model = Model()
    rows: list[dict[str, Any]] = []
    skipped = 0
    files = list(image_files(args.images))
    for lo in range(0, len(files), args.batch_size):
        good, pixels = [], []
        for path in files[lo : lo + args.batch_size]:
            try:
                pixels.append(model.decode(path))
                good.append(path)
            except ImageError as exc:
                skipped += 1
                print(f"skipped {path}: {exc}", file=sys.stderr)
        if not good:
            continue
        for path, row in zip(good, model.probabilities(np.stack(pixels)), strict=True):
            top = model.top(row, args.top_k)
            rows.append({"path": str(path), **top[0], "top_k": top})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            labels = ", ".join(f"{t['label']} {t['probability']:.4f}" for t in row["top_k"])
            print(f"{row['path']}: {labels}")
    return 1 if skipped else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader went away (`python predict.py ... | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
