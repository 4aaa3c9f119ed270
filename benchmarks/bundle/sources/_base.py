"""What a corpus source is: where its images come from and how to list them by class.

A source module defines one or more :class:`Source` objects. ``collect()`` returns, for
each class, its :class:`Candidate` images; nothing is decoded until a candidate's
``render()`` is called, so listing a source is cheap. The pool builder
(:mod:`benchmarks.bundle.pools`) takes each class's candidates in a stable order,
renders them, drops byte-identical images and keeps up to a cap per class.

Rules every source keeps (the data cards repeat them):

* one upstream artwork collection per source: themes, fonts or packages that share or
  derive from the same artwork are one source;
* nothing from the real-images benchmark's sources (Oxygen, elementary, Noto emoji,
  Wesnoth), openclipart, or scikit-image's LFW faces;
* one image per object: one size of an icon, one frame of an animation, no skin-tone
  variant of an emoji;
* every image rendered to RGBA or RGB PNG bytes, its longer side at most
  :data:`MAX_SIDE` (shrunk with Lanczos, never enlarged).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MAX_SIDE",
    "Candidate",
    "Source",
    "SourceMissing",
    "apt_installed",
    "png_bytes",
    "render_svg",
    "slug",
]

#: The longest side a pooled image keeps.
MAX_SIDE = 256


class SourceMissing(RuntimeError):
    """A source's package is not installed (the message names the command to run)."""


@dataclass(frozen=True)
class Candidate:
    """One image a source offers: ``render()`` gives its PNG bytes (empty: unusable).

    Images of one ``group`` (the frames of one sprite, the sizes of one icon) are one
    object: the pool keeps at most one of them unless the source says otherwise.
    """

    name: str
    group: str
    render: Callable[[], bytes]


@dataclass(frozen=True)
class Source:
    """One upstream collection of real images.

    Attributes:
        name: short identifier (``twemoji``), used in task names and data cards.
        kind: ``digits``, ``clothes``, ``icons``, ``drawings``, ``emoji``, ``textures``,
            ``sprites`` or ``photos``.
        summary: one sentence for the data card.
        licence: the images' licence, as the package states it.
        packages: Debian packages it reads (``apt-get install``).
        npm: npm packages it reads, ``name@version``.
        collect: ``{class: candidates}``; raises :class:`SourceMissing`.
        lineage: where the artwork comes from, and what it must not be combined with.
    """

    name: str
    kind: str
    summary: str
    licence: str
    collect: Callable[[], dict[str, list[Candidate]]]
    packages: Sequence[str] = ()
    npm: Sequence[str] = ()
    lineage: str = ""
    notes: Sequence[str] = field(default_factory=tuple)


def apt_installed(package: str, path: Path) -> None:
    """Raise :class:`SourceMissing` unless ``path`` (installed by ``package``) exists."""
    if not path.exists():
        raise SourceMissing(
            f"{path} is missing: install the Debian package with "
            f"`sudo apt-get install {package}` (or `make corpus-sources`)."
        )


def png_bytes(image: object, max_side: int = MAX_SIDE) -> bytes:
    """``image`` (a PIL image) as PNG bytes, RGBA or RGB, its longer side at most
    ``max_side``; empty bytes for an empty or fully transparent image."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    if image.mode not in ("RGB", "RGBA"):
        alpha = "transparency" in image.info or image.mode in ("LA", "PA", "P")
        image = image.convert("RGBA" if alpha else "RGB")
    if image.mode == "RGBA":
        box = image.getchannel("A").getbbox()
        if box is None:
            return b""
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def render_svg(path: Path, side: int) -> bytes:
    """The SVG file ``path`` rendered to a ``side`` px PNG by ``rsvg-convert``.

    Raises:
        SourceMissing: ``rsvg-convert`` (Debian ``librsvg2-bin``) is not installed.
    """
    tool = shutil.which("rsvg-convert")
    if tool is None:
        raise SourceMissing(
            "rsvg-convert is missing: install it with `sudo apt-get install librsvg2-bin` "
            "(or `make corpus-sources`)."
        )
    done = subprocess.run(
        [tool, "-w", str(side), "-h", str(side), "--keep-aspect-ratio", str(path)],
        capture_output=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else b""


def slug(text: str) -> str:
    """A class name from a folder or group name: ``"Smileys & Emotion"`` ->
    ``"smileys-emotion"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
