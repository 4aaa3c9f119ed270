"""SuperTux game sprites from Debian (``supertux-data``), one image per object.

The classes are the kinds of thing the game draws, each a coherent look:

* ``creatures``: Tux and the enemies, centred characters on transparency (one folder
  under ``images/creatures/`` per creature, all its animations and variants inside);
* ``objects``: items and props (``images/objects/`` and ``images/powerups/``: coins,
  blocks, doors, springs, flowers, potions), centred on transparency like the
  creatures but not alive; the nine powerups are too few for a class of their own;
* ``tiles``: level terrain tiles (``images/tiles/<theme>/``), square pieces of ground,
  walls and water that fill the frame (the editor markers, sky pieces, decorations and
  signs filed among them are left out).

Left out: ``worldmap`` (it mixes small walking-Tux frames with overhead map sheets),
``background`` (mostly panoramas over 512 px), ``decal``, ``engine`` (editor and menu
art) and ``particles`` (tiny).

A creature or object is one group, its folder, and gives one image: the file named like
the folder, else the first frame of the folder's own ``.sprite`` file, else its first
file in sorted order. A tile's group is its file name without the frame number
(``waterfall0-1-2`` -> ``waterfall``), and gives its first frame in sorted order. Images
under 16 px or over 512 px on a side (tilesheets, panoramas) are skipped.
"""

from __future__ import annotations

import functools
import re
import struct
from pathlib import Path

from benchmarks.bundle.sources._base import Candidate, Source, apt_installed, png_bytes

__all__ = ["SUPERTUX"]

SUPERTUX_ROOT = Path("/usr/share/games/supertux2/images")

#: class -> the top-level folders whose sub-folders are one object each.
OBJECT_CLASSES = {"creatures": ("creatures",), "objects": ("objects", "powerups")}
#: class -> the top-level folders whose files are one object each (frames aside).
TILE_CLASSES = {"tiles": ("tiles",)}
#: Folders that hold no picture of a thing: light masks and test tiles.
SKIPPED = frozenset({"lightmap", "lightmap_light", "test"})
#: Tile folders that are not terrain: editor markers, sky pieces, decorations and signs.
TILE_SKIPPED = frozenset({"auxiliary", "background", "doodads", "signs"})
MIN_SIDE, MAX_SIDE = 16, 512

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FIRST_IMAGE = re.compile(r'\(images\s+"([^"]+)"')
_FRAME_NUMBER = re.compile(r"[-_]?\d+(?:[-_]\d+)*$")


def _png_size(path: Path) -> tuple[int, int] | None:
    """A PNG file's ``(width, height)`` from its header; ``None`` if it is not a PNG."""
    with path.open("rb") as handle:
        head = handle.read(24)
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE):
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _usable(path: Path) -> bool:
    """Whether ``path`` is a PNG with both sides within ``MIN_SIDE`` to ``MAX_SIDE``."""
    size = _png_size(path)
    return size is not None and MIN_SIDE <= min(size) and max(size) <= MAX_SIDE


def _render_file(path: Path) -> bytes:
    """The PNG file ``path`` as RGBA or RGB PNG bytes (see :func:`png_bytes`)."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return png_bytes(image)


def _sprite_first_frame(folder: Path) -> Path | None:
    """The first image of ``<folder>/<folder name>.sprite``'s first action, if any."""
    sprite = folder / f"{folder.name}.sprite"
    if not sprite.is_file():
        return None
    match = _FIRST_IMAGE.search(sprite.read_text(encoding="utf-8", errors="replace"))
    return folder / match.group(1) if match else None


def _object_image(folder: Path) -> Path | None:
    """The image that stands for the object of ``folder`` (see the module docstring)."""
    files = sorted(p for p in folder.rglob("*.png") if p.is_file() and not p.is_symlink())
    preferred = [folder / f"{folder.name}.png", _sprite_first_frame(folder)]
    for path in [p for p in preferred if p is not None and p in files] + files:
        if _usable(path):
            return path
    return None


def _objects(root: Path, tops: tuple[str, ...]) -> list[Candidate]:
    """One candidate per object folder under the ``tops`` folders of ``root``."""
    out = []
    for top in tops:
        base = root / top
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            if folder.name in SKIPPED:
                continue
            image = _object_image(folder)
            if image is not None:
                name = f"{top}_{folder.name}"
                render = functools.partial(_render_file, image)
                out.append(Candidate(name, f"{top}/{folder.name}", render))
    return sorted(out, key=lambda c: c.name)


def _frame_group(rel: Path) -> str:
    """A file's object: its folder and name without the frame number."""
    stem = _FRAME_NUMBER.sub("", rel.stem) or rel.stem
    return (rel.parent / stem).as_posix()


def _tiles(root: Path, tops: tuple[str, ...]) -> list[Candidate]:
    """One candidate per tile (its first usable frame) under the ``tops`` of ``root``."""
    chosen: dict[str, Path] = {}
    for top in tops:
        for path in sorted((root / top).rglob("*.png")):
            rel = path.relative_to(root)
            if (SKIPPED | TILE_SKIPPED).intersection(rel.parts) or path.is_symlink():
                continue
            group = _frame_group(rel)
            if group not in chosen and _usable(path):
                chosen[group] = path
    return [
        Candidate(
            "_".join(path.relative_to(root).with_suffix("").parts),
            group,
            functools.partial(_render_file, path),
        )
        for group, path in sorted(chosen.items())
    ]


def _supertux(root: Path = SUPERTUX_ROOT) -> dict[str, list[Candidate]]:
    """SuperTux's creatures, objects and tiles, one image per object.

    Args:
        root: the game's ``images`` folder.

    Raises:
        SourceMissing: ``supertux-data`` is not installed.
    """
    apt_installed("supertux-data", root)
    out = {label: _objects(root, tops) for label, tops in OBJECT_CLASSES.items()}
    out |= {label: _tiles(root, tops) for label, tops in TILE_CLASSES.items()}
    return {label: out[label] for label in sorted(out) if out[label]}


SUPERTUX = Source(
    name="supertux",
    kind="sprites",
    summary="SuperTux 2 game art: creatures, items and level tiles, one frame per object.",
    licence=(
        "GPL-3+ (Files: *), with some files public-domain, CC-BY-SA-3.0/4.0 or GPL-2+ "
        "(Debian copyright for supertux-data)"
    ),
    collect=_supertux,
    packages=("supertux-data",),
    lineage=(
        "The SuperTux team's artwork. Pingus shares a developer but not the art; no other "
        "source here reads it."
    ),
    notes=(
        "One image per creature or object folder, and per tile name without frame "
        "numbers; images under 16 px or over 512 px on a side are skipped.",
        "worldmap, background, decal, engine and particles are left out.",
    ),
)
