"""Game textures from Debian, read straight from the games' ``.pk3`` zip archives.

UFO: Alien Invasion (``ufoai-textures``) files its photo-based material textures under
``textures/tex_<kind>/``; the kinds are the classes. Nexuiz (``nexuiz-textures``) files
them by texture pack (``evil4_techwalls``, ``egyptsoc_trim``), so its classes come from
the word in the folder name that says what the surface is (trim, wall, floor, ...).

Both games keep, next to each texture, maps for the renderer (normal, specular, gloss,
glow maps and overlay layers); those are not pictures of a surface and are dropped. A
file whose bytes repeat an earlier one (same CRC-32 and size in the archive's directory)
is dropped, and a texture stored both as JPG and TGA is kept once. Every image is decoded
with Pillow and rendered as RGB; one under 16 px on a side renders as unusable.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Callable, Collection
from pathlib import Path, PurePosixPath

from benchmarks.bundle.sources._base import Candidate, Source, apt_installed, png_bytes, slug

__all__ = ["NEXUIZ", "UFOAI"]

UFOAI_PK3 = Path("/usr/share/games/ufoai/base/0textures.pk3")
NEXUIZ_PK3 = Path("/usr/share/games/nexuiz/data/textures.pk3")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tga")
#: A texture with a side shorter than this (a flat colour swatch) is unusable.
MIN_SIDE = 16

#: UFO:AI folders used as classes. Left out: tex_trak (Nexuiz's "trak" artwork, byte
#: copies of it), tex_mattn and tex_ctp1 (one author's mixed sets, not a kind of
#: surface), tex_common (editor tool textures: clip, caulk, nodraw), tex_anim (animation
#: frames) and the tiny tex_terrain, tex_dirt and tex_buildings_snow.
UFOAI_FOLDERS = (
    "tex_alienb",
    "tex_base",
    "tex_buildings",
    "tex_doors",
    "tex_furniture",
    "tex_lights",
    "tex_material",
    "tex_misc",
    "tex_nature",
    "tex_pics",
    "tex_shop",
    "tex_streets",
    "tex_tech",
    "tex_ufo",
    "tex_vehicles",
)
#: UFO:AI renderer maps: normal, specular, gloss, glow and pulse maps.
UFOAI_MAPS = frozenset({"nm", "sm", "gm", "glow", "pls"})
#: UFO:AI suffixes that mark a layer only when the plain texture is beside them
#: (``2ln_g`` is the road marking over ``2ln``; ``ab_crate_g`` is crate number g).
UFOAI_LAYERS = frozenset({"g", "blend"})

#: Nexuiz renderer maps and layers: normal, gloss, glow, bump, team-colour masks
#: (shirt, pants), effect, luma, alpha, blend and specular layers.
NEXUIZ_MAPS = frozenset(
    {"norm", "gloss", "glow", "bump", "shirt", "pants", "fx", "fx2", "luma", "alpha"}
    | {"blend", "spec"}
)
#: Team-colour variants of one Nexuiz texture: the same object, so one group.
NEXUIZ_VARIANTS = frozenset({"r", "red", "blue"})
#: The word of a Nexuiz folder name -> its class. Folders without one (packs named
#: only by map, such as trak4 or e7, and misc, mat, sfx and fx folders) are left out.
NEXUIZ_WORDS = {
    "trim": "trim",
    "trims": "trim",
    "trimd": "trim",
    "techtrims": "trim",
    "wall": "wall",
    "walls": "wall",
    "techwalls": "wall",
    "basewall": "wall",
    "floor": "floor",
    "floors": "floor",
    "techfloors": "floor",
    "basefloor": "floor",
    "metal": "metal",
    "metals": "metal",
    "basemetal": "metal",
    "bmtls": "metal",
    "base": "base",
    "light": "light",
    "lights": "light",
    "terrain": "terrain",
    "terraintex": "terrain",
    "support": "support",
    "grate": "grate",
    "grates": "grate",
    "wood": "wood",
    "woods": "wood",
    "stone": "stone",
    "roofs": "roof",
}
#: Nexuiz folders whose word matches but whose images are not surfaces (alpha ramps).
NEXUIZ_SKIPPED = frozenset({"terrain_alphafade"})


def _render_member(archive: Path, member: str) -> bytes:
    """The image ``member`` of the zip ``archive`` as RGB PNG bytes; empty if tiny."""
    import io

    from PIL import Image

    with zipfile.ZipFile(archive) as pk3, Image.open(io.BytesIO(pk3.read(member))) as image:
        if min(image.size) < MIN_SIDE:
            return b""
        # via RGBA: a palette image's transparency is dropped without a warning
        rgb = image if image.mode == "RGB" else image.convert("RGBA").convert("RGB")
        return png_bytes(rgb)


def _suffix(stem: str) -> str:
    """The last ``_word`` of a file stem (``wall_nm`` -> ``nm``), or ``""``."""
    head, sep, tail = stem.rpartition("_")
    return tail if sep and head else ""


def _is_map(
    stem: str, stems: Collection[str], maps: Collection[str], layers: Collection[str]
) -> bool:
    """Whether ``stem`` names a renderer map (``maps``) or a layer over a texture that
    is in the same folder (``layers``), rather than a texture of its own."""
    suffix = _suffix(stem)
    if suffix in maps:
        return True
    return suffix in layers and stem[: -len(suffix) - 1] in stems


def _pk3_candidates(
    archive: Path,
    class_of: Callable[[str], str | None],
    maps: Collection[str],
    layers: Collection[str] = (),
    group_of: Callable[[str, str], str] | None = None,
) -> dict[str, list[Candidate]]:
    """The textures of a ``.pk3`` under ``textures/<folder>/``, by class.

    Args:
        archive: the zip archive.
        class_of: a folder name -> its class, or ``None`` to leave the folder out.
        maps: file-name suffixes of renderer maps, always dropped.
        layers: suffixes dropped only where the plain texture is in the same folder.
        group_of: ``(class, stem)`` -> the texture's group (default ``class/stem``).
    """
    with zipfile.ZipFile(archive) as pk3:
        infos = sorted(
            (i for i in pk3.infolist() if i.filename.lower().endswith(IMAGE_SUFFIXES)),
            key=lambda i: i.filename,
        )
    folders: dict[str, list[tuple[PurePosixPath, zipfile.ZipInfo]]] = {}
    for info in infos:
        path = PurePosixPath(info.filename)
        if len(path.parts) == 3 and path.parts[0] == "textures":
            folders.setdefault(path.parts[1], []).append((path, info))
    seen_bytes: set[tuple[int, int]] = set()
    out: dict[str, list[Candidate]] = {}
    for folder, members in sorted(folders.items()):
        label = class_of(folder)
        if label is None:
            continue
        stems = {path.stem for path, _ in members}
        seen_stems: set[str] = set()
        for path, info in members:
            key = (info.CRC, info.file_size)
            if path.stem in seen_stems or key in seen_bytes:
                continue
            if _is_map(path.stem, stems, maps, layers):
                continue
            seen_stems.add(path.stem)
            seen_bytes.add(key)
            group = group_of(label, path.stem) if group_of else f"{label}/{path.stem}"
            render = functools.partial(_render_member, archive, info.filename)
            out.setdefault(label, []).append(Candidate(f"{folder}_{path.stem}", group, render))
    return {label: out[label] for label in sorted(out)}


def _ufoai_class(folder: str) -> str | None:
    """``tex_buildings`` -> ``buildings``; ``None`` for a folder left out."""
    if folder not in UFOAI_FOLDERS:
        return None
    return slug(folder.removeprefix("tex_"))


def _ufoai(archive: Path = UFOAI_PK3) -> dict[str, list[Candidate]]:
    """UFO:AI's textures by ``tex_`` folder, without maps, tex_trak or byte copies.

    Args:
        archive: ``0textures.pk3`` of ``ufoai-textures``.

    Raises:
        SourceMissing: ``ufoai-textures`` is not installed.
    """
    apt_installed("ufoai-textures", archive)
    return _pk3_candidates(archive, _ufoai_class, UFOAI_MAPS, UFOAI_LAYERS)


def _nexuiz_class(folder: str) -> str | None:
    """The class a Nexuiz folder's words name (``evil4_d_techwalls`` -> ``wall``), the
    last matching word first; ``None`` if no word does."""
    if folder in NEXUIZ_SKIPPED:
        return None
    for word in reversed(folder.lower().split("_")):
        if word in NEXUIZ_WORDS:
            return NEXUIZ_WORDS[word]
    return None


def _nexuiz_group(label: str, stem: str) -> str:
    """A texture's group: its class and name without a team-colour suffix, so that
    ``e8crete_red`` and ``e8crete_blue`` (and one name in two packs) are one object."""
    suffix = _suffix(stem)
    base = stem[: -len(suffix) - 1] if suffix in NEXUIZ_VARIANTS else stem
    return f"{label}/{base}"


def _nexuiz(archive: Path = NEXUIZ_PK3) -> dict[str, list[Candidate]]:
    """Nexuiz's textures by the surface word of their folder, without maps or copies.

    Args:
        archive: ``textures.pk3`` of ``nexuiz-textures``.

    Raises:
        SourceMissing: ``nexuiz-textures`` is not installed.
    """
    apt_installed("nexuiz-textures", archive)
    return _pk3_candidates(archive, _nexuiz_class, NEXUIZ_MAPS, group_of=_nexuiz_group)


UFOAI = Source(
    name="ufoai",
    kind="textures",
    summary="UFO: Alien Invasion material textures (mostly photo-based), by texture folder.",
    licence=(
        "GPL-2+ (Files: *), with per-file GPL-2, GPL-3+, CC-BY-3.0, CC-BY-SA-3.0, Expat "
        "and public-domain entries (Debian copyright for ufoai-textures)"
    ),
    collect=_ufoai,
    packages=("ufoai-textures",),
    lineage=(
        "The UFO:AI team's textures. Its tex_trak folder is left out: it is Nexuiz's "
        "'trak' artwork (byte copies), and Nexuiz is its own source. One texture is "
        "shared with OpenArena."
    ),
    notes=(
        "Normal/specular/gloss/glow/pulse maps (_nm, _sm, _gm, _glow, _pls) and road-"
        "marking or blend layers (_g, _blend beside their texture) are dropped.",
        "Full-frame textures, not centred objects; rendered as RGB.",
    ),
)

NEXUIZ = Source(
    name="nexuiz",
    kind="textures",
    summary="Nexuiz sci-fi and gothic game textures, classed by the surface word of their folder.",
    licence="GPL-2+ (Debian copyright for nexuiz-textures: Nexuiz (c) 2002-2009 Alientrap)",
    collect=_nexuiz,
    packages=("nexuiz-textures",),
    lineage=(
        "Nexuiz and OpenArena (openarena-081-textures) share texture packs (byte-"
        "identical files and paths: e7, e8, evil8_base, dsi, ...): they are one "
        "Quake-community source, so OpenArena is not read. UFO:AI's tex_trak folder is "
        "Nexuiz artwork and is left out of UFO:AI."
    ),
    notes=(
        "Classes are derived from folder names (trim, wall, floor, metal, ...), so they "
        "are noisier than UFO:AI's folders.",
        "Maps (_norm, _gloss, _glow, _bump, _shirt, _pants, _fx, _luma, _alpha, _blend, "
        "_spec) and the sfx/fx, misc and map-named folders are left out; red/blue "
        "team-colour variants share a group.",
    ),
)
