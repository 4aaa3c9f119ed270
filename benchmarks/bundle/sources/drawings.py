"""Line drawings from npm: Tabler's outline icons, one class per Tabler category.

The SVGs draw black strokes on a transparent background; each is rendered and laid on
white, as RGB, so that a model (or a person) sees the drawing and not an empty square.
"""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path

from benchmarks.bundle.sources._base import Candidate, Source, png_bytes, render_svg, slug
from benchmarks.bundle.sources.npm import npm_package

__all__ = ["TABLER", "TABLER_DROPPED", "TABLER_NPM", "on_white", "tabler_candidates"]

TABLER_NPM = "@tabler/icons@3.52.0"
#: Categories left out: Brand holds company logos (trademarks, not pictograms).
TABLER_DROPPED = ("Brand",)
#: The side the icons are rendered at.
TABLER_SIDE = 96


def on_white(png: bytes) -> bytes:
    """The PNG ``png`` laid on white, as pool PNG bytes in RGB (empty: nothing drawn)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        drawing = image.convert("RGBA")
    if drawing.getchannel("A").getbbox() is None:
        return b""
    canvas = Image.new("RGBA", drawing.size, (255, 255, 255, 255))
    canvas.alpha_composite(drawing)
    return png_bytes(canvas.convert("RGB"))


def _render(path: Path) -> bytes:
    data = render_svg(path, TABLER_SIDE)
    return on_white(data) if data else b""


def tabler_candidates(root: Path) -> dict[str, list[Candidate]]:
    """The outline icons of the unpacked ``@tabler/icons`` at ``root``, by category.

    Args:
        root: the package root (holds ``categories/outline/<Category>/*.svg``).
    """
    out: dict[str, list[Candidate]] = {}
    for folder in sorted((root / "categories" / "outline").iterdir()):
        if not folder.is_dir() or folder.name in TABLER_DROPPED:
            continue
        out[slug(folder.name)] = [
            Candidate(path.stem, path.stem, partial(_render, path))
            for path in sorted(folder.glob("*.svg"))
            if path.is_file() and not path.is_symlink()
        ]
    return out


def _tabler() -> dict[str, list[Candidate]]:
    return tabler_candidates(npm_package(TABLER_NPM))


TABLER = Source(
    name="tabler",
    kind="icons",
    summary="Tabler outline icons (SVG line art on white, 96 px), one class per category.",
    licence="MIT",
    collect=_tabler,
    npm=(TABLER_NPM,),
    lineage=(
        "Original Tabler artwork (Pawel Kuna and contributors). No overlap with any other "
        "corpus or excluded source."
    ),
    notes=(
        "The Brand category (company logos) is left out.",
        "Each icon sits in one category folder, so it is one image of one class.",
        "Rendering needs rsvg-convert (Debian librsvg2-bin).",
    ),
)
