"""Icon themes from Debian: Paper (Sam Hewitt) and MATE, classes by theme context folder.

Paper ships every size of every icon as a real file, and Debian dereferences its links,
so one icon name often sits in several contexts as a byte copy: of the 2226 PNGs at
48x48 in ``paper-icon-theme`` 1.5.0+git20200312.aa3e8af-4 only 649 are unique. The Paper
source reads that one size and keeps the first of each set of byte-identical files (in
sorted ``(context, name)`` order); the number dropped is logged when it is listed.

MATE keeps most of its copies as symbolic links, so the MATE source skips links and
takes each icon once, at its largest size of 32 to 256 px, as the real-image benchmark
does (:func:`benchmarks.realimages_tasks.icon_candidates`, whose records are that
module's own and hold raw file bytes, hence the small copy here). Some copies are real
files (``mate-icon-theme`` 1.26.0: 57 of the 113 mimetypes icons), so MATE drops byte
copies the same way.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from pathlib import Path

from benchmarks.bundle.sources._base import Candidate, Source, apt_installed, png_bytes, slug

__all__ = ["MATE", "PAPER"]

logger = logging.getLogger(__name__)

PAPER_ROOT = Path("/usr/share/icons/Paper")
MATE_ROOT = Path("/usr/share/icons/mate")

#: The one Paper size read: a context without it is left out.
PAPER_SIZE = "48x48"
#: The sizes MATE icons are taken from (the largest one each icon has), in px.
MATE_MIN_SIDE, MATE_MAX_SIDE = 32, 256
#: MATE contexts left out: ``animations`` holds spinner frame strips, not icons.
MATE_SKIPPED = frozenset({"animations"})


def _render_file(path: Path) -> bytes:
    """The image file ``path`` as RGBA or RGB PNG bytes (see :func:`png_bytes`)."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return png_bytes(image)


def _paper(root: Path = PAPER_ROOT) -> dict[str, list[Candidate]]:
    """Paper's 48 px icons by context, one file per distinct content.

    Args:
        root: the theme folder (``/usr/share/icons/Paper``).

    Raises:
        SourceMissing: ``paper-icon-theme`` is not installed.
    """
    apt_installed("paper-icon-theme", root)
    seen: set[str] = set()
    dropped = total = 0
    out: dict[str, list[Candidate]] = {}
    for context in sorted(p for p in (root / PAPER_SIZE).iterdir() if p.is_dir()):
        icons = []
        for path in sorted(context.glob("*.png")):
            if path.is_symlink() or not path.is_file():
                continue
            total += 1
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:
                dropped += 1
                continue
            seen.add(digest)
            icons.append(Candidate(path.stem, path.stem, functools.partial(_render_file, path)))
        if icons:
            out[slug(context.name)] = icons
    logger.info(
        "Paper: %d of %d %s icons are byte copies and were dropped", dropped, total, PAPER_SIZE
    )
    return out


def _side(folder: str) -> int | None:
    """``"48x48"`` -> 48; ``None`` for a folder that is not a size (``scalable``)."""
    match = re.fullmatch(r"(\d+)x\1", folder)
    return int(match.group(1)) if match else None


def _mate(root: Path = MATE_ROOT) -> dict[str, list[Candidate]]:
    """MATE's icons by context, each icon once at its largest real (non-link) size.

    Args:
        root: the theme folder (``/usr/share/icons/mate``), laid out ``<size>/<context>/``.

    Raises:
        SourceMissing: ``mate-icon-theme`` is not installed.
    """
    apt_installed("mate-icon-theme", root)
    largest: dict[tuple[str, str], tuple[int, Path]] = {}
    for path in sorted(root.glob("*/*/*.png")):
        side = _side(path.parent.parent.name)
        context = path.parent.name
        if side is None or not MATE_MIN_SIDE <= side <= MATE_MAX_SIDE:
            continue
        if context in MATE_SKIPPED or path.is_symlink():
            continue
        key = (slug(context), path.stem)
        if key not in largest or largest[key][0] < side:
            largest[key] = (side, path)
    seen: set[str] = set()
    dropped = 0
    out: dict[str, list[Candidate]] = {}
    for (context, stem), (_, path) in sorted(largest.items()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            dropped += 1
            continue
        seen.add(digest)
        render = functools.partial(_render_file, path)
        out.setdefault(context, []).append(Candidate(stem, stem, render))
    logger.info("MATE: %d of %d icons are byte copies and were dropped", dropped, len(largest))
    return out


PAPER = Source(
    name="paper",
    kind="icons",
    summary="Paper desktop icons (flat colour on transparent), 48 px, by theme context.",
    licence="CC-BY-SA-4.0 / CC-BY-SA-3.0 (icons; Debian copyright for paper-icon-theme)",
    collect=_paper,
    packages=("paper-icon-theme",),
    lineage=(
        "Original artwork by Sam Hewitt, outside the GNOME/Tango/MATE family. Papirus and "
        "Deepin derive from Paper: never combine them with it. Moka/Faba are by the same "
        "designer but separate artwork."
    ),
    notes=(
        "One size (48x48); byte-identical files are dropped at listing (1.5.0 Debian: "
        "649 unique of 2226).",
        "places is mostly folder variants, a low-variety class.",
    ),
)

MATE = Source(
    name="mate",
    kind="icons",
    summary="MATE desktop icons (GNOME 2 style), each at its largest size of 32-256 px.",
    licence="LGPL-3+ or CC-BY-SA (Debian copyright for mate-icon-theme)",
    collect=_mate,
    packages=("mate-icon-theme",),
    lineage=(
        "GNOME 2 / Tango family artwork (Jakub Steiner, Lapo Calamandrei et al.): never "
        "combine with gnome-icon-theme, tango-icon-theme, gnome-colors or Adwaita's "
        "legacy icons."
    ),
    notes=(
        "Links and byte-identical files are skipped; animations (spinner strips) are left out.",
    ),
)
