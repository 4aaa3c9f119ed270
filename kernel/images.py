"""The one image decoder: files, bytes, PIL images and arrays become RGB pixels here.

Training (:func:`mlsel.trainers.cache.decode_image`), prediction and the profilers' pixel
pass all decode through this module, so a model sees at prediction what it saw in
training. The rules:

* transparent images (RGBA, LA, PA, the premultiplied RGBa and La, P with a tRNS, and
  L/RGB with a transparent colour key) are composited on white before alpha is dropped;
  16/32-bit integer and float images are scaled by their maximum to 0-255; every other
  mode (L, 1, P, CMYK, YCbCr, ...) goes through Pillow's ``convert("RGB")``;
* EXIF orientation is not applied: the trainer never applied it, and cached results and
  the shipped runs were made without it;
* an opaque RGB image is resized to ``size x size`` bilinear, bit for bit as the trainer
  always did; a JPEG at least ``2 * DRAFT_MARGIN`` times larger than ``size`` on both
  sides is decoded reduced first (Pillow's ``draft``: DCT scaling by 1/2, 1/4 or 1/8);
* no warning escapes while decoding (DecompressionBombWarning, palette transparency);
* an unreadable file, or one over :data:`PIXEL_CAP`, raises
  :class:`~mlsel.kernel.errors.DatasetError` naming it.

Pillow and numpy are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import io
import operator
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import DatasetError, invalid_parameter

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np
    import numpy.typing as npt
    from PIL import Image

    #: What :func:`decode` accepts: a path, encoded bytes, a PIL image or an array.
    ImageSource: TypeAlias = "str | os.PathLike[str] | bytes | Image.Image | npt.NDArray[Any]"

__all__ = ["DRAFT_MARGIN", "PIXEL_CAP", "apply_pixel_cap", "decode", "load_rgb", "to_rgb"]

# Pillow's default MAX_IMAGE_PIXELS: it warns above this and refuses twice this.
_PILLOW_DEFAULT_MAX = 1024 * 1024 * 1024 // 4 // 3  # 89,478,485

#: Most pixels (width x height) an image may have: 178,956,970, about 179 megapixels,
#: which is where Pillow refuses by default (twice its MAX_IMAGE_PIXELS). Being the same
#: number, the profilers' header scan (which asks Pillow) and this decoder refuse the same
#: files whichever runs first. Such an image takes 537 MB as RGB and 716 MB as RGBA.
PIXEL_CAP = 2 * _PILLOW_DEFAULT_MAX

#: A JPEG is drafted to at least ``DRAFT_MARGIN * size`` a side, then resized to ``size``.
DRAFT_MARGIN = 4

_WHITE = (255, 255, 255)
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_cap_applied = False


def apply_pixel_cap() -> None:
    """Make Pillow refuse what :func:`decode` refuses: the images over :data:`PIXEL_CAP`.

    Runs once, at the first decode, never at import. It sets
    ``PIL.Image.MAX_IMAGE_PIXELS`` to ``PIXEL_CAP // 2`` (Pillow refuses above twice that)
    only while it still holds Pillow's default, so a cap a caller chose (``None``
    included) is kept; with the shipped :data:`PIXEL_CAP` the two are equal.
    """
    global _cap_applied
    if _cap_applied:
        return
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS == _PILLOW_DEFAULT_MAX:
        Image.MAX_IMAGE_PIXELS = PIXEL_CAP // 2
    _cap_applied = True


_quiet_lock = threading.Lock()
_quiet_users = 0
_quiet_state: warnings.catch_warnings[None] | None = None


@contextmanager
def _quiet() -> Iterator[None]:
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


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as an RGB image (``image`` itself when it is opaque RGB already).

    Transparent pixels are composited on white; I/I;16/F images are scaled so their
    maximum becomes 255; other modes use Pillow's conversion.
    """
    from PIL import Image

    mode = image.mode
    if mode == "RGB" and image.info.get("transparency") is None:
        return image
    with _quiet():
        if mode in ("I", "F") or mode.startswith("I;"):
            return _stretched(image).convert("RGB")
        if mode in _ALPHA_MODES or image.info.get("transparency") is not None:
            if mode == "La":  # Pillow converts premultiplied La to LA only
                image = image.convert("LA")
            rgba = image if image.mode == "RGBA" else image.convert("RGBA")
            out = Image.new("RGB", image.size, _WHITE)
            out.paste(rgba, mask=rgba)  # blends by alpha: no RGBA background or composite
            return out
        return image.convert("RGB")


def _stretched(image: Image.Image) -> Image.Image:
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


def _describe(source: object) -> str:
    from PIL import Image

    if isinstance(source, str | os.PathLike):
        return str(os.fspath(source))
    if isinstance(source, bytes | bytearray | memoryview):
        return "<image bytes>"
    if isinstance(source, Image.Image):
        return str(getattr(source, "filename", "") or "<PIL image>")
    return f"<array of shape {getattr(source, 'shape', '?')}>"


def _unreadable(name: str, exc: Exception) -> DatasetError:
    from PIL import Image

    if isinstance(exc, Image.DecompressionBombError):  # a caller lowered Pillow's cap
        cap = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        return DatasetError(
            f"Image {name} is over Pillow's cap of {cap:.3g} megapixels (twice "
            "PIL.Image.MAX_IMAGE_PIXELS). Downscale it or remove it."
        )
    if isinstance(exc, ImportError):
        # Importing ultralytics patches Image.open to import pi_heif (often absent) when
        # Pillow cannot identify a file: the file is unreadable all the same.
        reason = "not a readable image (Pillow cannot identify its format)"
    else:
        reason = str(exc) or type(exc).__name__
    return DatasetError(f"Cannot decode image {name}: {reason}. Remove or replace the file.")


def _check_cap(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width * height > PIXEL_CAP:
        raise DatasetError(
            f"Image {name} is {width}x{height} ({width * height / 1e6:.3g} megapixels), over "
            f"mlsel's cap of {PIXEL_CAP / 1e6:.3g} megapixels "
            "(mlsel.kernel.images.PIXEL_CAP). Downscale it or remove it."
        )


def _load(source: ImageSource, name: str | None, draft: int | None) -> tuple[Image.Image, bool]:
    """``(image with its pixels loaded, whether this module opened it)``; call quietly."""
    import numpy as np
    from PIL import Image

    apply_pixel_cap()
    label = name or _describe(source)
    if isinstance(source, Image.Image):  # the caller's: never drafted nor closed here
        try:
            _check_cap(source, label)
            source.load()
        except (DatasetError, MemoryError):
            raise
        except Exception as exc:  # a damaged file makes Pillow raise nearly anything
            raise _unreadable(label, exc) from exc
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
            raise _unreadable(label, exc) from None
        except Exception as exc:
            raise _unreadable(label, exc) from exc
        try:
            _check_cap(image, label)
            if draft is not None and image.format == "JPEG":
                image.draft("RGB", (draft, draft))
            image.load()
        except (DatasetError, MemoryError):
            image.close()
            raise
        except Exception as exc:
            image.close()
            raise _unreadable(label, exc) from exc
        return image, True
    array = np.asarray(source)
    try:
        made = Image.fromarray(array)
    except (TypeError, ValueError) as exc:
        raise DatasetError(
            f"Cannot decode image {label}: an array of shape {array.shape} and dtype "
            f"{array.dtype} is not an image. Pass (H, W, 3) uint8 RGB, (H, W) grey or a path."
        ) from exc
    _check_cap(made, label)
    return made, True


def load_rgb(
    source: ImageSource, *, draft: int | None = None, name: str | None = None
) -> tuple[Image.Image, str]:
    """``(the image as a new RGB image, the mode it was stored in)``, at full size.

    Args:
        source: a path, encoded bytes, a PIL image or an array.
        draft: for a JPEG file, decode reduced while both sides stay at least this.
        name: what error messages call the image (default: its path).

    Raises:
        DatasetError: the image cannot be read or is over :data:`PIXEL_CAP`.
    """
    with _quiet():
        image, owned = _load(source, name, draft)
        try:
            mode = image.mode
            rgb = to_rgb(image)
            return (rgb.copy() if rgb is image else rgb), mode
        finally:
            if owned:
                image.close()


def decode(
    source: ImageSource, size: int | None = None, *, name: str | None = None
) -> npt.NDArray[np.uint8]:
    """One image as an ``(H, W, 3)`` RGB uint8 array, ``(size, size, 3)`` when sized.

    Args:
        source: a path, encoded bytes, a PIL image or an array (``(H, W, 3)`` uint8 RGB,
            ``(H, W)`` grey, ``(H, W, 4)`` RGBA). A PIL image is used as it is: a JPEG
            passed so is not drafted, and may differ slightly from its file's decode.
        size: resize to ``size x size`` (bilinear, aspect not kept); ``None``: full size.
        name: what error messages call the image (default: its path).

    Raises:
        DatasetError: the image cannot be read or is over :data:`PIXEL_CAP`.
    """
    import numpy as np
    from PIL import Image

    if size is not None:
        given: object = size
        try:
            size = -1 if isinstance(size, bool) else operator.index(size)  # numpy ints too
        except TypeError:
            size = -1
        if size < 1:
            raise invalid_parameter("size", "decode", "a positive int or None", given)
    draft = None if size is None else DRAFT_MARGIN * size
    with _quiet():
        image, owned = _load(source, name, draft)
        try:
            rgb = to_rgb(image)
            if owned and rgb is not image:
                image.close()  # free a large RGBA/P/CMYK source before resizing
            if size is not None and rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
        finally:
            if owned:
                image.close()
