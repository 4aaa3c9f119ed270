"""First pass over every file: size, content digest and image header (no decoding)."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

__all__ = ["FileInfo", "scan_file"]


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


def scan_file(path: str) -> FileInfo:
    """Read one file: byte size, BLAKE2 digest of its bytes, and its image header.

    Only the header is parsed here; a file whose pixel data is damaged past the header
    is found by the pixel pass of the profiler, which decodes.
    """
    from PIL import Image, UnidentifiedImageError

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
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return FileInfo(nbytes=len(data), digest=digest, error=f"not a readable image ({exc})")
    except ImportError:
        # Importing ultralytics patches Image.open to import pi_heif (often absent) when
        # Pillow cannot identify a file: the file is unreadable all the same.
        return FileInfo(nbytes=len(data), digest=digest, error="not a readable image")
    if width <= 0 or height <= 0:
        return FileInfo(nbytes=len(data), digest=digest, error="image has no pixels")
    return FileInfo(len(data), digest, width, height, fmt.upper(), mode)
