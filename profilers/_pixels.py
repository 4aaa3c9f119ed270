"""Second pass: decode a sample of images at reduced size and measure their pixels.

Images are decoded by the kernel's :func:`~mlsel.kernel.images.load_rgb` (transparency
on white), small: JPEGs through Pillow's ``draft`` (the decoder scales by 1/2, 1/4 or 1/8
while decoding), then every image is shrunk so its longest side is at most
:data:`STAT_SIDE` pixels. Sharpness and edge density are therefore measured at that
scale, which makes them comparable across datasets of different resolutions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlsel.kernel.errors import DatasetError
from mlsel.kernel.images import load_rgb

__all__ = ["STAT_NAMES", "STAT_SIDE", "THUMB_SIDE", "TINY_SIDE", "PixelResult", "pixel_stats"]

STAT_SIDE = 128  # longest side at which pixel statistics are measured
TINY_SIDE = 16  # side of the grey thumbnails the pixel landmarkers learn from
THUMB_SIDE = 112  # side of the RGB thumbnails the ImageNet landmarkers look at
EDGE_THRESHOLD = 25.0  # gradient magnitude (0-255 scale) that counts as an edge
STAT_NAMES = (
    "brightness",
    "contrast",
    "saturation",
    "colourfulness",
    "sharpness",
    "edge_density",
    "pixel_entropy",
    "grayscale",
)


@dataclass(frozen=True)
class PixelResult:
    """Statistics of one image (``STAT_NAMES`` order), its thumbnails, or an error."""

    stats: tuple[float, ...] = ()
    tiny: bytes = b""
    thumb: bytes = b""
    error: str = ""


# Modes without colour channels: their images count as grayscale whatever their pixels.
_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _mean_var(values: np.ndarray) -> tuple[float, float]:
    """Mean and population variance of a float32 array, in two passes (numpy's
    ``mean``/``std`` take five, and these small images are measured by the hundred)."""
    flat = values.reshape(-1)
    mean = float(flat.sum(dtype=np.float64)) / flat.size
    centred = flat - np.float32(mean)
    return mean, float(np.dot(centred, centred)) / flat.size


def _stats(rgb: np.ndarray, gray_source: bool) -> tuple[float, ...]:
    pixels = rgb.astype(np.float32)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    # elementwise max/min of three planes is far cheaper than a reduction over axis 2
    top = np.maximum(np.maximum(r, g), b)
    spread = top - np.minimum(np.minimum(r, g), b)
    saturation = spread / np.maximum(top, 1.0)
    rg_mean, rg_var = _mean_var(r - g)
    yb_mean, yb_var = _mean_var(0.5 * (r + g) - b)
    colourfulness = math.hypot(math.sqrt(rg_var), math.sqrt(yb_var)) + 0.3 * math.hypot(
        rg_mean, yb_mean
    )
    grayscale = gray_source or _mean_var(spread)[0] < 2.0
    if luma.shape[0] >= 3 and luma.shape[1] >= 3:
        lap = 4 * luma[1:-1, 1:-1]
        for shifted in (luma[:-2, 1:-1], luma[2:, 1:-1], luma[1:-1, :-2], luma[1:-1, 2:]):
            lap -= shifted
        sharpness = _mean_var(lap)[1]
    else:
        sharpness = 0.0
    if luma.shape[0] > 1 and luma.shape[1] > 1:
        dx = luma[:-1, 1:] - luma[:-1, :-1]
        dy = luma[1:, :-1] - luma[:-1, :-1]
        dx *= dx
        dy *= dy
        dx += dy
        edges = np.count_nonzero(dx > EDGE_THRESHOLD**2) / dx.size
    else:
        edges = 0.0
    hist = np.bincount(luma.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    prob = hist[hist > 0] / hist.sum()
    entropy = float(-(prob * np.log2(prob)).sum())
    luma_mean, luma_var = _mean_var(luma)
    return (
        luma_mean / 255.0,
        math.sqrt(luma_var) / 255.0,
        _mean_var(saturation)[0],
        colourfulness,
        sharpness,
        edges,
        entropy,
        1.0 if grayscale else 0.0,
    )


def pixel_stats(task: tuple[str, bool]) -> PixelResult:
    """Decode ``path`` small and measure it; ``want_thumb`` adds the RGB thumbnail."""
    from PIL import Image

    path, want_thumb = task
    # draft keeps both sides >= the request: half of STAT_SIDE is enough for the
    # statistics of a landscape photo (640x480 decodes at 1/4 scale, 160x120)
    need = max(STAT_SIDE // 2, THUMB_SIDE if want_thumb else 0)
    try:
        rgb, mode = load_rgb(path, draft=need)
    except DatasetError as exc:  # its message names the file; the profile lists the names
        return PixelResult(error=f"cannot decode ({exc.__cause__ or exc})")
    gray_source = mode in _GREY_MODES
    thumb = b""
    if want_thumb:
        thumb = rgb.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR).tobytes()
    if max(rgb.size) > STAT_SIDE:
        rgb.thumbnail((STAT_SIDE, STAT_SIDE), Image.Resampling.BILINEAR)
    array = np.asarray(rgb)
    tiny = rgb.convert("L").resize((TINY_SIDE, TINY_SIDE), Image.Resampling.BILINEAR)
    return PixelResult(_stats(array, gray_source), tiny.tobytes(), thumb)
