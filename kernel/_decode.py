"""The pixels of the one image decoder, in numpy and Pillow only (no mlsel import).

:mod:`mlsel.kernel.images` decodes through these functions, and ``mlsel export`` copies
this file verbatim into the exported ``predict.py``, so an exported model decodes its
inputs exactly as its training did. The rules are :mod:`mlsel.kernel.images`'s (its
docstring draws them); what that module adds is the cache of reduced copies of large
files, which changes no pixel: a cached copy is the same reduction stored losslessly.

Errors are built by ``Limits.error`` (:class:`ImageError` here; the kernel passes its
``DatasetError``), with one-line messages that name the image.
"""

from __future__ import annotations

import io
import operator
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DRAFT_MARGIN",
    "LARGE_PIXELS",
    "LIMITS",
    "PIXEL_CAP",
    "REDUCED_SIDE",
    "ImageError",
    "Limits",
    "decode",
]

# Pillow's default MAX_IMAGE_PIXELS: it warns above this and refuses twice this.
PILLOW_DEFAULT_MAX = 1024 * 1024 * 1024 // 4 // 3  # 89,478,485
PIXEL_CAP = 250_000_000  # most pixels an image may have (a 15,000 x 15,000 scan is 225 M)
LARGE_PIXELS = 16_000_000  # a non-JPEG over this is decoded once and reduced
REDUCED_SIDE = 1024  # a reduced large image keeps both sides at least this
DRAFT_MARGIN = 4  # a JPEG is drafted to at least DRAFT_MARGIN * size a side
BAND_PIXELS = 4_000_000  # a large image is converted and reduced this many pixels at once

_WHITE = (255, 255, 255)
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class ImageError(ValueError):
    """An input is not a readable image, or is over the pixel cap (a one-line reason)."""


@dataclass(frozen=True)
class Limits:
    """The decoder's limits and how its errors are built."""

    cap: int = PIXEL_CAP
    large_pixels: int = LARGE_PIXELS
    reduced_side: int = REDUCED_SIDE
    band_pixels: int = BAND_PIXELS
    cap_name: str = "PIXEL_CAP"
    error: Callable[[str], Exception] = ImageError


LIMITS = Limits()


def apply_pixel_cap(limits: Limits = LIMITS) -> None:
    """While Pillow's ``MAX_IMAGE_PIXELS`` is its default, make it ``limits.cap``."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT_MAX:
        Image.MAX_IMAGE_PIXELS = limits.cap


_quiet_lock = threading.Lock()
_quiet_users = 0
_quiet_state: Any = None


@contextmanager
def quiet() -> Iterator[None]:
    """Ignore every warning while any thread decodes.

    ``warnings.catch_warnings`` swaps process-wide state, so threads entering and leaving
    it out of order let warnings through and leave filters behind; one shared context,
    entered by the first decoding thread and left by the last, keeps it balanced.
    """
    global _quiet_users, _quiet_state
    if getattr(sys.flags, "context_aware_warnings", False):  # Python 3.14+: per thread
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
        return
    with _quiet_lock:
        if _quiet_users == 0:
            state = warnings.catch_warnings()
            state.__enter__()
            warnings.simplefilter("ignore")
            _quiet_state = state
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_users -= 1
            if _quiet_users == 0 and _quiet_state is not None:
                _quiet_state.__exit__(None, None, None)
                _quiet_state = None


def to_rgb(image: Any) -> Any:
    """``image`` as an RGB image (``image`` itself when it is opaque RGB already).

    Transparent pixels are composited on white; I/I;16/F images are scaled so their
    maximum becomes 255; other modes use Pillow's conversion.
    """
    from PIL import Image

    mode = image.mode
    if mode == "RGB" and image.info.get("transparency") is None:
        return image
    with quiet():
        if is_wide(mode):
            return stretched(image).convert("RGB")
        if mode in _ALPHA_MODES or image.info.get("transparency") is not None:
            if mode == "La":  # Pillow converts premultiplied La to LA only
                image = image.convert("LA")
            rgba = image if image.mode == "RGBA" else image.convert("RGBA")
            out = Image.new("RGB", image.size, _WHITE)
            out.paste(rgba, mask=rgba)  # blends by alpha: no RGBA background or composite
            return out
        return image.convert("RGB")


def is_wide(mode: str) -> bool:
    """Whether ``mode`` holds 16/32-bit integers or floats (scaled by their maximum)."""
    return mode in ("I", "F") or mode.startswith("I;")


def stretched(image: Any) -> Any:
    """An integer or float image as L, its maximum scaled to 255 (NaN and below 0: 0)."""
    import numpy as np
    from PIL import Image

    array = np.asarray(image, dtype=np.float32)
    if not array.flags.writeable:
        array = array.copy()
    np.nan_to_num(array, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    top = max(float(array.max()), 0.0) or 1.0
    array *= 255.0 / top
    np.clip(array, 0, 255, out=array)
    return Image.fromarray(array.astype(np.uint8))


def describe(source: object) -> str:
    """What error messages call ``source``: its path, or what kind of input it is."""
    from PIL import Image

    if isinstance(source, str | os.PathLike):
        return str(os.fspath(source))
    if isinstance(source, bytes | bytearray | memoryview):
        return "<image bytes>"
    if isinstance(source, Image.Image):
        return str(getattr(source, "filename", "") or "<PIL image>")
    return f"<array of shape {getattr(source, 'shape', '?')}>"


def unreadable(name: str, exc: Exception, limits: Limits = LIMITS) -> Exception:
    """The error for an image Pillow could not read (``exc`` is what it raised)."""
    from PIL import Image

    if isinstance(exc, Image.DecompressionBombError):
        cap = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        if cap * 1e6 >= limits.cap:  # over twice the cap: Pillow refused before asking
            return limits.error(
                f"Image {name} is over mlsel's cap of {limits.cap / 1e6:.3g} megapixels "
                f"({limits.cap_name}). Downscale it or remove it."
            )
        return limits.error(  # a caller lowered Pillow's cap
            f"Image {name} is over Pillow's cap of {cap:.3g} megapixels (twice "
            "PIL.Image.MAX_IMAGE_PIXELS). Downscale it or remove it."
        )
    if isinstance(exc, ImportError | Image.UnidentifiedImageError):
        # Pillow's own words name the file object, not the file. Importing ultralytics
        # patches Image.open to import pi_heif (often absent) when Pillow cannot identify
        # a file: the file is unreadable all the same.
        reason = "Pillow cannot identify its format"
    else:
        reason = str(exc) or type(exc).__name__
    return limits.error(f"Cannot decode image {name}: {reason}. Remove or replace the file.")


def check_cap(image: Any, name: str, limits: Limits = LIMITS) -> None:
    """Raise when ``image`` has more pixels than ``limits.cap``."""
    width, height = image.size
    if width * height > limits.cap:
        raise limits.error(
            f"Image {name} is {width}x{height} ({width * height / 1e6:.3g} megapixels), over "
            f"mlsel's cap of {limits.cap / 1e6:.3g} megapixels "
            f"({limits.cap_name}). Downscale it or remove it."
        )


def load_pixels(image: Any, name: str, limits: Limits = LIMITS) -> None:
    """Decode the pixels of ``image`` (opened by Pillow), a failure as ``limits.error``."""
    try:
        image.load()
    except MemoryError:
        raise
    except Exception as exc:  # a damaged file makes Pillow raise nearly anything
        raise unreadable(name, exc, limits) from exc


def open_image(
    source: Any, name: str, draft: int | None, limits: Limits = LIMITS
) -> tuple[Any, bool]:
    """``(image, whether this module opened it)``, its cap checked, a JPEG drafted.

    A file's or bytes' pixels are not decoded yet (:func:`load_pixels`); the caller's
    PIL image and an array are used as they are. Call quietly.
    """
    import numpy as np
    from PIL import Image

    if isinstance(source, Image.Image):  # the caller's: never drafted nor closed here
        check_cap(source, name, limits)
        load_pixels(source, name, limits)
        return source, False
    if isinstance(source, str | os.PathLike | bytes | bytearray | memoryview):
        opened = (
            io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source
        )
        try:
            image = Image.open(opened)
        except MemoryError:
            raise
        except ImportError as exc:
            raise unreadable(name, exc, limits) from None
        except Exception as exc:
            raise unreadable(name, exc, limits) from exc
        try:
            check_cap(image, name, limits)
        except BaseException:
            image.close()
            raise
        try:
            if draft is not None and image.format == "JPEG":
                image.draft("RGB", (draft, draft))
        except MemoryError:
            image.close()
            raise
        except Exception as exc:
            image.close()
            raise unreadable(name, exc, limits) from exc
        return image, True
    array = np.asarray(source)
    try:
        made = Image.fromarray(array)
    except (TypeError, ValueError) as exc:
        raise limits.error(
            f"Cannot decode image {name}: an array of shape {array.shape} and dtype "
            f"{array.dtype} is not an image. Pass (H, W, 3) uint8 RGB, (H, W) grey or a path."
        ) from exc
    check_cap(made, name, limits)
    return made, True


def is_large(image: Any, limits: Limits = LIMITS) -> bool:
    """Whether an opened file is large and has no draft (over ``limits.large_pixels``)."""
    width, height = image.size
    return bool(image.format != "JPEG" and width * height > limits.large_pixels)


def reduce_factor(image: Any, draft: int, limits: Limits = LIMITS) -> int:
    """The integer factor a large image is reduced by: both sides stay at least
    ``max(draft, limits.reduced_side)``."""
    return int(max(1, min(image.size) // max(draft, limits.reduced_side)))


def reduce_to_rgb(image: Any, factor: int, limits: Limits = LIMITS) -> Any:
    """``image`` (pixels loaded) as RGB reduced ``factor`` times, a band of rows at a time.

    Converting per band gives the same pixels as converting the whole image (the bands
    are whole multiples of ``factor`` rows), while memory holds one band at full size
    beside the bitmap. 16/32-bit images are scaled by their maximum, so whole.
    """
    from PIL import Image

    if is_wide(image.mode):
        return to_rgb(image).reduce(factor)
    width, height = image.size
    rows = factor * max(1, limits.band_pixels // (width * factor))
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(height, top + rows)))
        out.paste(to_rgb(band).reduce(factor), (0, top // factor))
    return out


def _reduce_uncached(image: Any, source: Any, name: str, draft: int, limits: Limits) -> Any:
    """A new reduced RGB copy of the large, opened ``image`` (no cache)."""
    factor = reduce_factor(image, draft, limits)
    load_pixels(image, name, limits)
    small = reduce_to_rgb(image, factor, limits)
    image.close()  # free the full bitmap now
    return small


#: How a large file is reduced: ``(opened image, source, name, draft, limits) -> RGB``.
Reducer = Callable[[Any, Any, str, int, Limits], Any]


@contextmanager
def rgb_image(
    source: Any,
    name: str | None,
    draft: int | None,
    limits: Limits = LIMITS,
    reduce: Reducer = _reduce_uncached,
) -> Iterator[tuple[Any, str, bool]]:
    """``(the image as RGB, the mode it was stored in, whether that RGB image is new)``.

    Valid inside the block: an image this module opened is closed on leaving it. With
    ``draft``, a JPEG is drafted and a large image of another format comes reduced
    (``reduce``); either way both sides stay at least ``draft``. Call quietly.
    """
    apply_pixel_cap(limits)
    label = name or describe(source)
    image, owned = open_image(source, label, draft, limits)
    try:
        mode = image.mode
        if owned and draft is not None and is_large(image, limits):
            yield reduce(image, source, label, draft, limits), mode, True
            return
        if owned:
            load_pixels(image, label, limits)
        rgb = to_rgb(image)
        if owned and rgb is not image:
            image.close()  # free a large RGBA/P/CMYK source before resizing
        yield rgb, mode, rgb is not image
    finally:
        if owned:
            image.close()


def check_size(size: Any, limits: Limits = LIMITS) -> int:
    """``size`` as a positive int (numpy ints too), else ``limits.error``."""
    given = size
    try:
        size = -1 if isinstance(size, bool) else operator.index(size)
    except TypeError:
        size = -1
    if size < 1:
        raise limits.error(f"The size to decode to must be a positive int. Got {given!r}.")
    return int(size)


def decode_sized(
    source: Any,
    size: int | None,
    *,
    name: str | None = None,
    limits: Limits = LIMITS,
    reduce: Reducer = _reduce_uncached,
) -> Any:
    """One image as an ``(H, W, 3)`` RGB uint8 array, ``(size, size, 3)`` when sized
    (bilinear, aspect not kept); ``size`` already checked."""
    import numpy as np
    from PIL import Image

    draft = None if size is None else DRAFT_MARGIN * size
    with quiet(), rgb_image(source, name, draft, limits, reduce) as (rgb, _, _):
        if size is not None and rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def decode(image: Any, size: int) -> Any:
    """``image`` (a path, encoded bytes or a PIL image) as ``(size, size, 3)`` uint8 RGB.

    Transparent pixels on white, 16-bit images scaled by their maximum, a JPEG drafted,
    a large image reduced, then a bilinear square resize: the decoding of training.

    Raises:
        ImageError: the input is not a readable image, or is over the pixel cap.
    """
    return decode_sized(image, check_size(size))
