"""Stellarium's pictures (Debian ``stellarium-data``): deep-sky photographs and
constellation drawings.

Deep-sky photographs (``nebulae/default/*.png``) come without class folders. Each file
is named by a catalogue designation (``m31.png``, ``n7000-vasey.png``, ``ic434.png``,
``sh2-155.png``), and Stellarium's own deep-sky catalogue (``catalog.dat``, a gzip'd Qt
``QDataStream``, format 3.x) gives every designation an object type. The photographs
are classed by that type, in broad kinds: galaxy, globular cluster, open cluster,
nebula, planetary nebula, dark nebula. About 50 files named otherwise (``lmc_03``,
``pleiades``, ``coma_cluster``) are left out, as are the few the catalogue types as
stars or unknown. Photos of one object (``ic2118-1``, ``ic2118-2``; ``m31`` and
``n224``) share a group.

Constellation drawings are classed by sky culture (``skycultures/<culture>/``): the
images its ``constellationsart.fab`` draws on the sky. Only cultures whose ``info.ini``
licence allows derivatives without NC or ND terms are read; ``chinese_contemporary`` is
a byte copy of ``western`` and is left out; an image found in two kept cultures (14 of
western's are also Indian ones) cannot tell them apart and is left out of both.

No ``MATE_PHOTOS`` source: ``mate-backgrounds`` has 12 nature photos, and its other two
folders (9 each) are not photos, so it has no two classes of 10.
"""

from __future__ import annotations

import configparser
import functools
import gzip
import hashlib
import logging
import re
import struct
from pathlib import Path

from benchmarks.bundle.sources._base import Candidate, Source, apt_installed, png_bytes, slug

__all__ = ["STELLARIUM_ART", "STELLARIUM_SKY"]

logger = logging.getLogger(__name__)

NEBULAE = Path("/usr/share/stellarium/nebulae/default")
SKYCULTURES = Path("/usr/share/stellarium/skycultures")

#: Stellarium's ``Nebula::NebulaType`` codes (format 3.x) -> the class of the photo.
TYPE_CLASSES = {
    **dict.fromkeys((0, 1, 2, 3, 4), "galaxy"),  # galaxy, active, radio, interacting, QSO
    **dict.fromkeys((5, 6, 8, 9), "open-cluster"),  # cluster, open, association, cloud
    7: "globular-cluster",
    **dict.fromkeys((10, 13, 14, 15, 16, 17, 18, 19, 23), "nebula"),  # diffuse kinds
    **dict.fromkeys((11, 26, 27), "planetary-nebula"),  # also possible and proto-PN
    12: "dark-nebula",
}
#: File-name prefix -> the catalogue column it numbers (longest prefixes first).
PREFIXES = {
    "barnard": "B",
    "sh2-": "Sh2",
    "ldn": "LDN",
    "lbn": "LBN",
    "rcw": "RCW",
    "vdb": "VdB",
    "ic": "IC",
    "n": "NGC",
    "m": "M",
    "u": "UGC",
    "p": "PGC",
}
_DESIGNATION = re.compile(rf"({'|'.join(map(re.escape, PREFIXES))})(\d+)")

# One catalogue record, between its strings: DSO number, RA, Dec, B and V magnitude,
# type; sizes, angle, redshift, parallax and distance (with errors) and 14 catalogue
# numbers; Arp and VV numbers; 5 more numbers. Floats are stored as doubles.
_HEAD = struct.Struct(">IddddI")
_BODY = struct.Struct(">ddidddddd14I")
_ARP_VV = struct.Struct(">II")
_TAIL = struct.Struct(">5I")
#: The columns of the 14 catalogue numbers in ``_BODY``.
_BODY_COLUMNS: tuple[str, ...] = ("NGC", "IC", "M", "C", "B", "Sh2", "VdB", "RCW", "LDN")
_BODY_COLUMNS += ("LBN", "Cr", "Mel", "PGC", "UGC")

#: Cultures left out whatever their licence: a byte copy of ``western``.
COPIED_CULTURES = frozenset({"chinese_contemporary"})
_RESTRICTED = re.compile(r"\b(NC|ND)\b")


class _Stream:
    """A cursor over Qt ``QDataStream`` bytes (big-endian)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, layout: struct.Struct) -> tuple[int | float, ...]:
        """The next fixed-size fields, as ``layout`` unpacks them."""
        values = layout.unpack_from(self.data, self.pos)
        self.pos += layout.size
        return values

    def string(self) -> str:
        """A ``QString``: a byte length (``0xffffffff``: null), then UTF-16BE."""
        (size,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        if size == 0xFFFFFFFF:
            return ""
        text = self.data[self.pos : self.pos + size].decode("utf-16-be")
        self.pos += size
        return text

    def skip_strings(self, count: int) -> None:
        """Read past ``count`` strings."""
        for _ in range(count):
            self.string()


def read_dso_types(catalog: Path) -> dict[tuple[str, int], tuple[int, int]]:
    """Stellarium's deep-sky catalogue as ``{(column, number): (record, type)}``.

    Args:
        catalog: ``catalog.dat`` (gzip'd ``QDataStream``, format 3.x).

    Raises:
        ValueError: the file is not a format 3.x catalogue, or its records do not line up.
    """
    stream = _Stream(gzip.decompress(catalog.read_bytes()))
    version = stream.string()
    stream.string()  # the edition, "standard"
    if not version.startswith("3."):
        raise ValueError(f"{catalog}: DSO catalogue format {version!r}, expected 3.x")
    out: dict[tuple[str, int], tuple[int, int]] = {}
    expected = 1
    while stream.pos < len(stream.data):
        record, *_, kind = stream.read(_HEAD)
        stream.string()  # morphological type
        numbers = stream.read(_BODY)[-len(_BODY_COLUMNS) :]
        stream.string()  # Ced
        stream.read(_ARP_VV)
        stream.skip_strings(7)  # PK, PN G, SNR G, ACO, HCG, ESO, vdBH
        stream.read(_TAIL)
        if record != expected:
            raise ValueError(f"{catalog}: record {expected} reads as {record}; format changed")
        expected += 1
        for column, number in zip(_BODY_COLUMNS, numbers, strict=True):
            if number:
                out.setdefault((column, int(number)), (int(record), int(kind)))
    return out


def _render_file(path: Path) -> bytes:
    """The image file ``path`` as RGBA or RGB PNG bytes (see :func:`png_bytes`)."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return png_bytes(image)


def _designation(stem: str) -> tuple[str, int] | None:
    """``"n7000-vasey"`` -> ``("NGC", 7000)``; ``None`` for a name without one."""
    match = _DESIGNATION.match(stem.lower())
    return (PREFIXES[match.group(1)], int(match.group(2))) if match else None


def _stellarium_sky(root: Path = NEBULAE) -> dict[str, list[Candidate]]:
    """Deep-sky photographs by object type, from Stellarium's catalogue.

    Args:
        root: ``nebulae/default``, with the photographs and ``catalog.dat``.

    Raises:
        SourceMissing: ``stellarium-data`` is not installed.
    """
    apt_installed("stellarium-data", root / "catalog.dat")
    types = read_dso_types(root / "catalog.dat")
    out: dict[str, list[Candidate]] = {}
    for path in sorted(root.glob("*.png")):
        designation = _designation(path.stem)
        found = types.get(designation) if designation else None
        label = TYPE_CLASSES.get(found[1]) if found else None
        if found is None or label is None:
            continue
        render = functools.partial(_render_file, path)
        out.setdefault(label, []).append(Candidate(path.stem, f"dso-{found[0]}", render))
    return {label: out[label] for label in sorted(out)}


def culture_licence(folder: Path) -> str:
    """The ``license`` of a sky culture's ``info.ini``; ``""`` if it states none or the
    file cannot be parsed (logged), so that the culture is left out."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(folder / "info.ini", encoding="utf-8-sig")
    except configparser.Error as error:
        logger.warning("%s/info.ini is unreadable, culture left out: %s", folder, error)
        return ""
    return parser.get("info", "license", fallback="").strip()


def allows_derivatives(licence: str) -> bool:
    """Whether a licence is stated and has no NC or ND term (``CC BY-NC-SA``: no)."""
    return bool(licence) and _RESTRICTED.search(licence.upper().replace("-", " ")) is None


def _art_files(folder: Path) -> list[Path]:
    """The images a culture's ``constellationsart.fab`` names, that exist, sorted."""
    fab = folder / "constellationsart.fab"
    if not fab.is_file():
        return []
    names = set()
    for line in fab.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) > 1 and not fields[0].startswith("#"):
            names.add(fields[1])
    return sorted(p for p in (folder / name for name in names) if p.is_file())


def _stellarium_art(root: Path = SKYCULTURES) -> dict[str, list[Candidate]]:
    """Constellation drawings by sky culture, for cultures that allow derivatives.

    Args:
        root: ``skycultures``, one folder per culture.

    Raises:
        SourceMissing: ``stellarium-data`` is not installed.
    """
    apt_installed("stellarium-data", root)
    files: dict[str, list[tuple[Path, str]]] = {}
    cultures_of: dict[str, set[str]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name in COPIED_CULTURES or not allows_derivatives(culture_licence(folder)):
            continue
        for path in _art_files(folder):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            files.setdefault(folder.name, []).append((path, digest))
            cultures_of.setdefault(digest, set()).add(folder.name)
    out: dict[str, list[Candidate]] = {}
    for culture, found in files.items():
        label = slug(culture)
        for path, digest in found:
            if len(cultures_of[digest]) == 1:
                render = functools.partial(_render_file, path)
                group = f"{culture}/{path.stem}"
                out.setdefault(label, []).append(Candidate(path.stem, group, render))
    return {label: out[label] for label in sorted(out)}


_STELLARIUM_LINEAGE = (
    "Stellarium's own data package. The deep-sky photos come from many observatories and "
    "amateurs (Grasslands Observatory, Peter Vasey, Oleg Bryzgalov, DSS/SDSS/2MASS "
    "surveys, ...). Both Stellarium sources read one package but different artwork."
)

STELLARIUM_SKY = Source(
    name="stellarium-sky",
    kind="photos",
    summary="Deep-sky astrophotographs from Stellarium, by object type from its catalogue.",
    licence=(
        "GPL-2+ package; the photo credits give per-photographer terms: Grasslands "
        "('use the image freely ... as long as it is credited'), Herm Perez, CC-BY-3.0 "
        "(Kuznetsov, Bryzgalov, Zotti); many photos have no terms of their own there"
    ),
    collect=_stellarium_sky,
    packages=("stellarium-data",),
    lineage=_STELLARIUM_LINEAGE,
    notes=(
        "Labels are the object type in Stellarium's catalogue.dat (format 3.16 in "
        "0.22.2) for the designation in the file name; files named otherwise are left out.",
        "The type is the catalogue's for the named object, so a photo can show more: "
        "IC 1805 is typed an open cluster, and its photo shows the Heart Nebula around it.",
        "Photos differ in source, scale and processing, so the class is not the only "
        "signal in an image.",
    ),
)

STELLARIUM_ART = Source(
    name="stellarium-art",
    kind="drawings",
    summary="Constellation drawings from Stellarium's sky cultures, by culture.",
    licence=(
        "Per culture (info.ini): only CC BY-SA, GPL or Free Art License cultures are "
        "read; the Western art is Johan Meuris's, Free Art License / CC BY-SA 4.0"
    ),
    collect=_stellarium_art,
    packages=("stellarium-data",),
    lineage=(
        _STELLARIUM_LINEAGE + " chinese_contemporary is a byte copy of western; images "
        "shared by two cultures are dropped from both."
    ),
    notes=(
        "Left out for NC/ND licences: arabic_al-sufi, babylonian_mulapin, egyptian_dendera, "
        "greek_farnese, greek_leidenAratea, maya, dakota, kamilaroi, ojibwe, ...; "
        "vanuatu_netwar states no licence.",
    ),
)
