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
* an opaque RGB image (not a large one, below) is resized to ``size x size`` bilinear, bit
  for bit as the trainer always did; a JPEG at least ``2 * DRAFT_MARGIN`` times larger
  than ``size`` on both sides is decoded reduced first (Pillow's ``draft``: DCT scaling
  by 1/2, 1/4 or 1/8);
* a *large* file that is not a JPEG (over :data:`LARGE_PIXELS`, 16 megapixels) has no
  draft: asked for at a size, it is decoded once at full size, one such image at a time
  per process, composited and reduced by an integer factor (``Image.reduce``) a band of
  rows at a time, so that memory holds the decoded bitmap, one band and the result;
  the reduced copy keeps both sides at least :data:`REDUCED_SIDE` (or the size asked
  for, when larger) and is then resized as above;
* that reduced copy is cached, in this process (a small LRU) and on disk under
  ``machine_cache_dir() / "decoded"`` (a PNG written to a temporary file, then renamed,
  so concurrent processes never read half a file), keyed by the file's real path, byte
  size and modification time (``st_mtime_ns``): hashing the bytes of a 700 MB file would
  cost as much as decoding it. A later decode of the same file at the same or a smaller
  size reads the copy instead of the full bitmap; a changed file (size or mtime) misses.
  A cache that cannot be written or read is skipped (logged at debug level), never an
  error;
* images up to :data:`PIXEL_CAP` (250 megapixels: a 15,000 x 15,000 scan is 225) are
  accepted; :func:`apply_pixel_cap` raises Pillow's ``MAX_IMAGE_PIXELS`` to it, so that
  an accepted image never makes Pillow warn, whoever opens it;
* no warning escapes while decoding (DecompressionBombWarning, palette transparency);
* an unreadable file, or one over :data:`PIXEL_CAP`, raises
  :class:`~mlsel.kernel.errors.DatasetError` naming it.

Pillow and numpy are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import operator
import os
import sys
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import DatasetError, invalid_parameter
from mlsel.kernel.home import machine_cache_dir

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np
    import numpy.typing as npt
    from PIL import Image

    #: What :func:`decode` accepts: a path, encoded bytes, a PIL image or an array.
    ImageSource: TypeAlias = "str | os.PathLike[str] | bytes | Image.Image | npt.NDArray[Any]"

__all__ = [
    "DRAFT_MARGIN",
    "LARGE_PIXELS",
    "PIXEL_CAP",
    "REDUCED_SIDE",
    "apply_pixel_cap",
    "decode",
    "load_rgb",
    "to_rgb",
]

logger = logging.getLogger(__name__)

# Pillow's default MAX_IMAGE_PIXELS: it warns above this and refuses twice this.
_PILLOW_DEFAULT_MAX = 1024 * 1024 * 1024 // 4 // 3  # 89,478,485

#: Most pixels (width x height) an image may have: 250,000,000 (250 megapixels), so that
#: a 15,000 x 15,000 scan (225 megapixels) is accepted. Pillow is told the same number
#: (:func:`apply_pixel_cap`): it warns above ``MAX_IMAGE_PIXELS`` and refuses above twice
#: it, so no accepted image makes it warn. The profilers' header scan refuses the same
#: files. Decoded, such an image takes 750 MB as RGB and 1 GB as RGBA.
PIXEL_CAP = 250_000_000

#: A file over this many pixels that is not a JPEG (16 megapixels) is decoded once at full
#: size, reduced, and the reduced copy cached (see the module's docstring).
LARGE_PIXELS = 16_000_000

#: The reduced copy of a large image keeps both sides at least this (when they were).
REDUCED_SIDE = 1024

#: A JPEG is drafted to at least ``DRAFT_MARGIN * size`` a side, then resized to ``size``.
DRAFT_MARGIN = 4

_WHITE = (255, 255, 255)
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")

_BAND_PIXELS = 4_000_000  # a large image is converted and reduced this many pixels at once
_MEMORY_BYTES = 128 * 2**20  # reduced copies kept in this process (RGB bytes)
_CACHE_VERSION = "1"  # part of every cache key: a new version ignores the old copies
_memory: OrderedDict[str, Image.Image] = OrderedDict()
_memory_lock = threading.Lock()
_large_decode = threading.Lock()  # one full-size decode of a large image at a time


def apply_pixel_cap() -> None:
    """Make Pillow accept what :func:`decode` accepts, and warn about none of it.

    Called by every decode and header scan, never at import: while
    ``PIL.Image.MAX_IMAGE_PIXELS`` holds Pillow's default it becomes :data:`PIXEL_CAP`
    (Pillow warns above it and refuses above twice it; :func:`decode` refuses above it).
    A cap a caller chose (``None`` included) is kept.
    """
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS == _PILLOW_DEFAULT_MAX:
        Image.MAX_IMAGE_PIXELS = PIXEL_CAP


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
        if _is_wide(mode):
            return _stretched(image).convert("RGB")
        if mode in _ALPHA_MODES or image.info.get("transparency") is not None:
            if mode == "La":  # Pillow converts premultiplied La to LA only
                image = image.convert("LA")
            rgba = image if image.mode == "RGBA" else image.convert("RGBA")
            out = Image.new("RGB", image.size, _WHITE)
            out.paste(rgba, mask=rgba)  # blends by alpha: no RGBA background or composite
            return out
        return image.convert("RGB")


def _is_wide(mode: str) -> bool:
    """Whether ``mode`` holds 16/32-bit integers or floats (scaled by their maximum)."""
    return mode in ("I", "F") or mode.startswith("I;")


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

    if isinstance(exc, Image.DecompressionBombError):
        cap = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        if cap * 1e6 >= PIXEL_CAP:  # over twice mlsel's cap: Pillow refused before asking
            return DatasetError(
                f"Image {name} is over mlsel's cap of {PIXEL_CAP / 1e6:.3g} megapixels "
                "(mlsel.kernel.images.PIXEL_CAP). Downscale it or remove it."
            )
        return DatasetError(  # a caller lowered Pillow's cap
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


def _load_pixels(image: Image.Image, name: str) -> None:
    """Decode the pixels of ``image`` (opened by Pillow), a failure as a DatasetError."""
    try:
        image.load()
    except MemoryError:
        raise
    except Exception as exc:  # a damaged file makes Pillow raise nearly anything
        raise _unreadable(name, exc) from exc


def _open(source: ImageSource, name: str, draft: int | None) -> tuple[Image.Image, bool]:
    """``(image, whether this module opened it)``, its cap checked, a JPEG drafted.

    A file's or bytes' pixels are not decoded yet (:func:`_load_pixels`); the caller's
    PIL image and an array are used as they are. Call quietly.
    """
    import numpy as np
    from PIL import Image

    if isinstance(source, Image.Image):  # the caller's: never drafted nor closed here
        _check_cap(source, name)
        _load_pixels(source, name)
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
            raise _unreadable(name, exc) from None
        except Exception as exc:
            raise _unreadable(name, exc) from exc
        try:
            _check_cap(image, name)
            if draft is not None and image.format == "JPEG":
                image.draft("RGB", (draft, draft))
        except (DatasetError, MemoryError):
            image.close()
            raise
        except Exception as exc:
            image.close()
            raise _unreadable(name, exc) from exc
        return image, True
    array = np.asarray(source)
    try:
        made = Image.fromarray(array)
    except (TypeError, ValueError) as exc:
        raise DatasetError(
            f"Cannot decode image {name}: an array of shape {array.shape} and dtype "
            f"{array.dtype} is not an image. Pass (H, W, 3) uint8 RGB, (H, W) grey or a path."
        ) from exc
    _check_cap(made, name)
    return made, True


def _is_large(image: Image.Image) -> bool:
    """Whether an opened file is large and has no draft (see :data:`LARGE_PIXELS`)."""
    width, height = image.size
    return image.format != "JPEG" and width * height > LARGE_PIXELS


@contextmanager
def _rgb(
    source: ImageSource, name: str | None, draft: int | None
) -> Iterator[tuple[Image.Image, str, bool]]:
    """``(the image as RGB, the mode it was stored in, whether that RGB image is new)``.

    Valid inside the block: an image this module opened is closed on leaving it. With
    ``draft``, a JPEG is drafted and a large image of another format comes reduced
    (:func:`_reduced`); either way both sides stay at least ``draft``. Call quietly.
    """
    apply_pixel_cap()
    label = name or _describe(source)
    image, owned = _open(source, label, draft)
    try:
        mode = image.mode
        if owned and draft is not None and _is_large(image):
            yield _reduced(image, source, label, draft), mode, True
            return
        if owned:
            _load_pixels(image, label)
        rgb = to_rgb(image)
        if owned and rgb is not image:
            image.close()  # free a large RGBA/P/CMYK source before resizing
        yield rgb, mode, rgb is not image
    finally:
        if owned:
            image.close()


def _reduced(image: Image.Image, source: ImageSource, name: str, draft: int) -> Image.Image:
    """A new RGB copy of the large, opened ``image``, reduced while its sides stay at least
    ``max(draft, REDUCED_SIDE)``; from the cache when a big enough copy is there.

    Only a file (``source`` a path) is cached, and only when it could be reduced.
    """
    key = _cache_key(source)
    cached = _cached(key, draft, name)
    if cached is not None:
        return cached
    with _large_decode:  # one full-size bitmap per process, whatever the threads
        cached = _cached(key, draft, name)  # another thread may have just made it
        if cached is not None:
            return cached
        factor = max(1, min(image.size) // max(draft, REDUCED_SIDE))
        _load_pixels(image, name)
        small = _reduce_to_rgb(image, factor)
        image.close()  # free the full bitmap now
    if key is not None and factor > 1:
        _remember(key, small)
        _write_disk(key, small, name)
        small = small.copy()  # the cached one stays the cache's
    return small


def _reduce_to_rgb(image: Image.Image, factor: int) -> Image.Image:
    """``image`` (pixels loaded) as RGB reduced ``factor`` times, a band of rows at a time.

    Converting per band gives the same pixels as converting the whole image (the bands
    are whole multiples of ``factor`` rows), while memory holds one band at full size
    beside the bitmap. 16/32-bit images are scaled by their maximum, so whole.
    """
    from PIL import Image

    if _is_wide(image.mode):
        return to_rgb(image).reduce(factor)
    width, height = image.size
    rows = factor * max(1, _BAND_PIXELS // (width * factor))
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(height, top + rows)))
        out.paste(to_rgb(band).reduce(factor), (0, top // factor))
    return out


def _cache_key(source: ImageSource) -> str | None:
    """The cache key of a file's current content (real path, size, mtime); ``None`` for
    bytes, PIL images and arrays, and for a file that cannot be stat'ed."""
    if not isinstance(source, str | os.PathLike):
        return None
    try:
        path = os.path.realpath(source)
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    identity = f"{_CACHE_VERSION}\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return hashlib.blake2b(identity.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def _cached(key: str | None, draft: int, name: str) -> Image.Image | None:
    """A new copy of the reduced image under ``key`` when both its sides are at least
    ``draft``: from this process, else from disk (then kept in this process too)."""
    if key is None:
        return None
    with _memory_lock:
        kept = _memory.get(key)
        if kept is not None:
            _memory.move_to_end(key)
    if kept is None:
        kept = _read_disk(key, name)
        if kept is None:
            return None
        _remember(key, kept)
    return kept.copy() if min(kept.size) >= draft else None


def _remember(key: str, image: Image.Image) -> None:
    """Keep ``image`` in this process's LRU of reduced copies (:data:`_MEMORY_BYTES`)."""
    with _memory_lock:
        _memory[key] = image
        _memory.move_to_end(key)
        while len(_memory) > 1 and _memory_bytes() > _MEMORY_BYTES:
            _memory.popitem(last=False)


def _memory_bytes() -> int:
    """Bytes of RGB pixels in this process's reduced copies; call holding the lock."""
    return sum(3 * image.width * image.height for image in _memory.values())


def _disk_path(key: str) -> str:
    return os.path.join(machine_cache_dir(), "decoded", f"{key}.png")


def _read_disk(key: str, name: str) -> Image.Image | None:
    """The reduced copy stored on disk under ``key``, or ``None`` (absent or unreadable)."""
    from PIL import Image

    try:
        with Image.open(_disk_path(key)) as stored:
            stored.load()
            return stored.convert("RGB") if stored.mode != "RGB" else stored.copy()
    except FileNotFoundError:
        return None
    except Exception as exc:  # unreadable cache: decode the file instead
        logger.debug("reduced copy of %s not read from the cache: %s", name, exc)
        return None


def _write_disk(key: str, image: Image.Image, name: str) -> None:
    """Store ``image`` under ``key`` atomically (temporary file, then ``os.replace``);
    a cache that cannot be written is skipped."""
    try:
        final = _disk_path(key)
        folder = os.path.dirname(final)
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{key}-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                image.save(out, format="PNG", compress_level=1)
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except Exception as exc:  # read-only or full disk, no home: decoding still works
        logger.debug("reduced copy of %s not cached on disk: %s", name, exc)


def load_rgb(
    source: ImageSource, *, draft: int | None = None, name: str | None = None
) -> tuple[Image.Image, str]:
    """``(the image as a new RGB image, the mode it was stored in)``.

    Args:
        source: a path, encoded bytes, a PIL image or an array.
        draft: decode reduced while both sides stay at least this: a JPEG file through
            Pillow's ``draft``, a large file of another format from its reduced copy
            (see the module's docstring). ``None``: at full size.
        name: what error messages call the image (default: its path).

    Raises:
        DatasetError: the image cannot be read or is over :data:`PIXEL_CAP`.
    """
    with _quiet(), _rgb(source, name, draft) as (rgb, mode, new):
        return (rgb if new else rgb.copy()), mode


def decode(
    source: ImageSource, size: int | None = None, *, name: str | None = None
) -> npt.NDArray[np.uint8]:
    """One image as an ``(H, W, 3)`` RGB uint8 array, ``(size, size, 3)`` when sized.

    Args:
        source: a path, encoded bytes, a PIL image or an array (``(H, W, 3)`` uint8 RGB,
            ``(H, W)`` grey, ``(H, W, 4)`` RGBA). A PIL image is used as it is: a JPEG
            passed so is not drafted, and may differ slightly from its file's decode.
        size: resize to ``size x size`` (bilinear, aspect not kept); ``None``: full size.
            A large file (not a JPEG) is reduced first, from its cached copy when there.
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
    with _quiet(), _rgb(source, name, draft) as (rgb, _, _):
        if size is not None and rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)
