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

The pixels are :mod:`mlsel.kernel._decode`'s (numpy and Pillow only, copied verbatim into
every exported ``predict.py``); this module adds the cache and mlsel's errors. Pillow and
numpy are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlsel.kernel import _decode as core
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

#: Most pixels (width x height) an image may have: 250,000,000 (250 megapixels), so that
#: a 15,000 x 15,000 scan (225 megapixels) is accepted. Pillow is told the same number
#: (:func:`apply_pixel_cap`): it warns above ``MAX_IMAGE_PIXELS`` and refuses above twice
#: it, so no accepted image makes it warn. The profilers' header scan refuses the same
#: files. Decoded, such an image takes 750 MB as RGB and 1 GB as RGBA.
PIXEL_CAP = core.PIXEL_CAP

#: A file over this many pixels that is not a JPEG (16 megapixels) is decoded once at full
#: size, reduced, and the reduced copy cached (see the module's docstring).
LARGE_PIXELS = core.LARGE_PIXELS

#: The reduced copy of a large image keeps both sides at least this (when they were).
REDUCED_SIDE = core.REDUCED_SIDE

#: A JPEG is drafted to at least ``DRAFT_MARGIN * size`` a side, then resized to ``size``.
DRAFT_MARGIN = core.DRAFT_MARGIN

_BAND_PIXELS = core.BAND_PIXELS  # a large image is converted and reduced this many at once
_MEMORY_BYTES = 128 * 2**20  # reduced copies kept in this process (RGB bytes)
_CACHE_VERSION = "1"  # part of every cache key: a new version ignores the old copies
_memory: OrderedDict[str, Image.Image] = OrderedDict()
_memory_lock = threading.Lock()
_large_decode = threading.Lock()  # one full-size decode of a large image at a time

#: Transparent pixels on white, wide images by their maximum (see :mod:`._decode`).
to_rgb = core.to_rgb
_quiet = core.quiet


def _limits() -> core.Limits:
    """This module's limits, read when called (tests and callers may change them)."""
    return core.Limits(
        cap=PIXEL_CAP,
        large_pixels=LARGE_PIXELS,
        reduced_side=REDUCED_SIDE,
        band_pixels=_BAND_PIXELS,
        cap_name="mlsel.kernel.images.PIXEL_CAP",
        error=DatasetError,
    )


def apply_pixel_cap() -> None:
    """Make Pillow accept what :func:`decode` accepts, and warn about none of it.

    Called by every decode and header scan, never at import: while
    ``PIL.Image.MAX_IMAGE_PIXELS`` holds Pillow's default it becomes :data:`PIXEL_CAP`
    (Pillow warns above it and refuses above twice it; :func:`decode` refuses above it).
    A cap a caller chose (``None`` included) is kept.
    """
    core.apply_pixel_cap(_limits())


@contextmanager
def _rgb(
    source: ImageSource, name: str | None, draft: int | None
) -> Iterator[tuple[Image.Image, str, bool]]:
    """``(the image as RGB, the mode it was stored in, whether that RGB image is new)``.

    Valid inside the block: an image this module opened is closed on leaving it. With
    ``draft``, a JPEG is drafted and a large image of another format comes reduced
    (:func:`_reduced`); either way both sides stay at least ``draft``. Call quietly.
    """
    with core.rgb_image(source, name, draft, _limits(), _reducer) as found:
        yield found


def _reducer(
    image: Image.Image, source: ImageSource, name: str, draft: int, limits: core.Limits
) -> Image.Image:
    return _reduced(image, source, name, draft)


def _reduced(image: Image.Image, source: ImageSource, name: str, draft: int) -> Image.Image:
    """A new RGB copy of the large, opened ``image``, reduced while its sides stay at least
    ``max(draft, REDUCED_SIDE)``; from the cache when a big enough copy is there.

    Only a file (``source`` a path) is cached, and only when it could be reduced.
    """
    key = _cache_key(source)
    cached = _cached(key, draft, name)
    if cached is not None:
        return cached
    limits = _limits()
    with _large_decode:  # one full-size bitmap per process, whatever the threads
        cached = _cached(key, draft, name)  # another thread may have just made it
        if cached is not None:
            return cached
        factor = core.reduce_factor(image, draft, limits)
        core.load_pixels(image, name, limits)
        small = _reduce_to_rgb(image, factor)
        image.close()  # free the full bitmap now
    if key is not None and factor > 1:
        _remember(key, small)
        _write_disk(key, small, name)
        small = small.copy()  # the cached one stays the cache's
    return small


def _reduce_to_rgb(image: Image.Image, factor: int) -> Image.Image:
    """``image`` (pixels loaded) as RGB reduced ``factor`` times, a band of rows at a time
    (:func:`mlsel.kernel._decode.reduce_to_rgb`)."""
    reduced: Image.Image = core.reduce_to_rgb(image, factor, _limits())
    return reduced


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
    import operator

    if size is not None:
        given: object = size
        try:
            size = -1 if isinstance(size, bool) else operator.index(size)  # numpy ints too
        except TypeError:
            size = -1
        if size < 1:
            raise invalid_parameter("size", "decode", "a positive int or None", given)
    pixels: npt.NDArray[np.uint8] = core.decode_sized(
        source, size, name=name, limits=_limits(), reduce=_reducer
    )
    return pixels
