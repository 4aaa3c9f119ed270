"""First pass over every file: size, content digest and image header (no decoding)."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

from mlsel.kernel import images

__all__ = ["FileInfo", "image_error", "over_cap_reason", "pixel_cap_reason", "scan_file"]

_CHUNK = 1 << 20  # bytes hashed at a time: a 700 MB scan never sits in memory whole


@dataclass(frozen=True)
class FileInfo:
    """What the header pass learns about one file; ``error`` is set when unreadable."""

    nbytes: int = 0
    digest: str = ""
    width: int = 0
    height: int = 0
    format: str = ""
    mode: str = ""
    error: str = ""


def pixel_cap_reason() -> str:
    """Why an image Pillow refuses as too large is skipped, naming the cap in megapixels.

    Pillow refuses (``DecompressionBombError``) an image of more than twice
    ``PIL.Image.MAX_IMAGE_PIXELS``; the cap is read now, so a caller's cap is named. With
    mlsel's (:func:`~mlsel.kernel.images.apply_pixel_cap`) that image is over
    :data:`~mlsel.kernel.images.PIXEL_CAP` too, which is named instead.
    """
    from PIL import Image

    cap = Image.MAX_IMAGE_PIXELS
    if cap is None:  # no cap: Pillow refuses nothing
        return "too large for Pillow"
    if 2 * cap >= images.PIXEL_CAP:
        return f"too large: over {_mlsel_cap()}; downscale it"
    return (
        f"too large: over Pillow's cap of {2 * cap / 1e6:.3g} megapixels "
        "(twice PIL.Image.MAX_IMAGE_PIXELS); downscale it"
    )


def over_cap_reason(width: int, height: int) -> str:
    """Why an image over mlsel's :data:`~mlsel.kernel.images.PIXEL_CAP` is skipped."""
    pixels = width * height / 1e6
    return (
        f"too large: {width}x{height} is {pixels:.3g} megapixels, over {_mlsel_cap()}; downscale it"
    )


def _mlsel_cap() -> str:
    """``"mlsel's cap of 250 megapixels (mlsel.kernel.images.PIXEL_CAP)"``."""
    return f"mlsel's cap of {images.PIXEL_CAP / 1e6:.3g} megapixels (mlsel.kernel.images.PIXEL_CAP)"


def image_error(exc: BaseException) -> str:
    """The one-line reason for an image Pillow cannot open or decode (``exc``: why)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, Image.DecompressionBombError):
        return pixel_cap_reason()
    if isinstance(exc, UnidentifiedImageError):
        return "not a readable image (Pillow cannot identify its format)"
    if isinstance(exc, ImportError):
        # Importing ultralytics patches Image.open to import pi_heif (often absent) when
        # Pillow cannot identify a file: the file is unreadable all the same.
        return "not a readable image"
    return f"not a readable image ({' '.join(str(exc).split()) or type(exc).__name__})"


def scan_file(path: str) -> FileInfo:
    """Read one file: byte size, BLAKE2 digest of its bytes, and its image header.

    Only the header is parsed here; a file whose pixel data is damaged past the header
    is found by :func:`~mlsel.profilers.verify_images` (or the profiler's pixel pass),
    which decode. An image over the pixel cap (mlsel's
    :data:`~mlsel.kernel.images.PIXEL_CAP`, 250 megapixels, which
    :func:`~mlsel.kernel.images.apply_pixel_cap` makes Pillow's too) is unreadable like a
    corrupt one. The bytes are hashed a chunk at a time, never held whole.
    """
    from PIL import Image

    images.apply_pixel_cap()
    try:
        nbytes, digest = _digest(path)
    except OSError as exc:
        return FileInfo(error=f"cannot read: {exc.strerror or exc}")
    if not nbytes:
        return FileInfo(nbytes=0, digest=digest, error="empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning and friends
            with Image.open(path) as image:
                width, height = image.size
                fmt, mode = image.format or "", image.mode
    except Exception as exc:  # a damaged file makes Pillow raise nearly anything
        return FileInfo(nbytes=nbytes, digest=digest, error=image_error(exc))
    if width <= 0 or height <= 0:
        return FileInfo(nbytes=nbytes, digest=digest, error="image has no pixels")
    if width * height > images.PIXEL_CAP:
        return FileInfo(nbytes=nbytes, digest=digest, error=over_cap_reason(width, height))
    return FileInfo(nbytes, digest, width, height, fmt.upper(), mode)


def _digest(path: str) -> tuple[int, str]:
    """``(byte size, 16-byte BLAKE2b hex digest)`` of a file, read a chunk at a time."""
    digest = hashlib.blake2b(digest_size=16)
    nbytes = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            nbytes += len(chunk)
    return nbytes, digest.hexdigest()
