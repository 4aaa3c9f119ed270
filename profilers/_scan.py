"""First pass over every file: size, content digest and image header (no decoding)."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

__all__ = ["FileInfo", "image_error", "pixel_cap_reason", "scan_file"]


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
    """Why an image over Pillow's pixel cap is skipped, naming the cap in megapixels.

    Pillow refuses (``DecompressionBombError``) an image of more than twice
    ``PIL.Image.MAX_IMAGE_PIXELS``; the cap is read now, so a raised cap is named.
    """
    from PIL import Image

    cap = Image.MAX_IMAGE_PIXELS
    if cap is None:  # no cap: Pillow refuses nothing
        return "too large for Pillow"
    return (
        f"too large: over Pillow's cap of {2 * cap / 1e6:.3g} megapixels "
        "(twice PIL.Image.MAX_IMAGE_PIXELS); downscale it"
    )


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
    which decode. An image over Pillow's pixel cap is unreadable like a corrupt one.
    """
    from PIL import Image

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return FileInfo(error=f"cannot read: {exc.strerror or exc}")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    if not data:
        return FileInfo(nbytes=0, digest=digest, error="empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning and friends
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                fmt, mode = image.format or "", image.mode
    except Exception as exc:  # a damaged file makes Pillow raise nearly anything
        return FileInfo(nbytes=len(data), digest=digest, error=image_error(exc))
    if width <= 0 or height <= 0:
        return FileInfo(nbytes=len(data), digest=digest, error="image has no pixels")
    return FileInfo(len(data), digest, width, height, fmt.upper(), mode)
