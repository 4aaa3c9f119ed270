"""The Debian-package corpus sources: how each lists its classes (maps, copies, frames,
licences dropped) on small fakes, a missing package is one line naming it, and, where
the real package is installed, its real class counts and a few renders."""

from __future__ import annotations

import gzip
import io
import logging
import os
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.bundle.sources import icons, photos, sprites, textures
from benchmarks.bundle.sources._base import MAX_SIDE, Candidate, Source, SourceMissing

Classes = dict[str, list[Candidate]]


def _image(path: Path, size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGBA") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def _image_bytes(size: tuple[int, int], colour: tuple[int, ...], fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


def _names(found: Classes) -> dict[str, list[str]]:
    return {label: [c.name for c in candidates] for label, candidates in found.items()}


def _decoded(candidate: Candidate) -> Image.Image:
    data = candidate.render()
    assert data, f"{candidate.name} rendered empty"
    return Image.open(io.BytesIO(data))


# --- icons ---------------------------------------------------------------------------


def test_paper_reads_one_size_and_drops_byte_copies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "Paper"
    first = _image(root / "48x48" / "apps" / "a.png", (48, 48), (255, 0, 0, 255))
    shutil.copy(first, root / "48x48" / "apps" / "b.png")
    _image(root / "48x48" / "apps" / "c.png", (48, 48), (0, 255, 0, 255))
    _image(root / "48x48" / "places" / "home.png", (48, 48), (0, 0, 255, 255))
    shutil.copy(first, root / "48x48" / "places" / "folder.png")
    (root / "48x48" / "emotes").mkdir()
    _image(root / "32x32" / "apps" / "z.png", (32, 32), (9, 9, 9, 255))
    _image(root / "32x32" / "devices" / "disk.png", (32, 32), (9, 9, 9, 255))

    with caplog.at_level(logging.INFO, logger=icons.__name__):
        found = icons._paper(root)

    assert _names(found) == {"apps": ["a", "c"], "places": ["home"]}
    assert "2 of 5" in caplog.text
    assert _decoded(found["apps"][0]).size == (48, 48)


def test_mate_takes_each_icon_once_at_its_largest_real_size_without_copies(tmp_path: Path) -> None:
    root = tmp_path / "mate"
    _image(root / "32x32" / "apps" / "editor.png", (32, 32), (1, 2, 3, 255))
    real = _image(root / "48x48" / "apps" / "editor.png", (48, 48), (1, 2, 3, 255))
    (root / "256x256" / "apps").mkdir(parents=True)
    os.symlink(real, root / "256x256" / "apps" / "editor.png")
    _image(root / "256x256" / "status" / "battery.png", (256, 256), (4, 5, 6, 255))
    _image(root / "48x48" / "status" / "battery.png", (48, 48), (4, 5, 6, 255))
    _image(root / "16x16" / "status" / "tiny.png", (16, 16), (4, 5, 6, 255))
    _image(root / "48x48" / "animations" / "spinner.png", (48, 48), (7, 8, 9, 255))
    shutil.copy(real, root / "48x48" / "status" / "editor-copy.png")

    found = icons._mate(root)

    assert _names(found) == {"apps": ["editor"], "status": ["battery"]}
    assert _decoded(found["apps"][0]).size == (48, 48)
    assert _decoded(found["status"][0]).size == (256, 256)


# --- textures ------------------------------------------------------------------------


def _pk3(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_ufoai_drops_maps_layers_copies_and_tex_trak(tmp_path: Path) -> None:
    floor = _image_bytes((32, 32), (10, 20, 30))
    archive = _pk3(
        tmp_path / "0textures.pk3",
        {
            "textures/tex_buildings/wall.jpg": _image_bytes((64, 32), (200, 0, 0), "JPEG"),
            "textures/tex_buildings/wall.tga": _image_bytes((64, 32), (201, 0, 0), "TGA"),
            "textures/tex_buildings/wall_nm.png": _image_bytes((64, 32), (128, 128, 255)),
            "textures/tex_buildings/wall_sm.png": _image_bytes((64, 32), (1, 1, 1)),
            "textures/tex_buildings/floor.png": floor,
            "textures/tex_buildings/floor_copy.png": floor,
            "textures/tex_buildings/road.png": _image_bytes((32, 32), (90, 90, 90)),
            "textures/tex_buildings/road_g.png": _image_bytes((32, 32), (255, 255, 0)),
            "textures/tex_buildings/tiny.png": _image_bytes((8, 8), (5, 5, 5)),
            "textures/tex_alienb/crate_g.png": _image_bytes((32, 32), (0, 90, 0)),
            "textures/tex_trak/trak_floor.png": _image_bytes((32, 32), (3, 3, 3)),
            "textures/tex_mattn/concrete.png": _image_bytes((32, 32), (4, 4, 4)),
            "textures/loose.png": _image_bytes((32, 32), (6, 6, 6)),
        },
    )

    found = textures._ufoai(archive)

    assert _names(found) == {
        "alienb": ["tex_alienb_crate_g"],
        "buildings": [
            "tex_buildings_floor",
            "tex_buildings_road",
            "tex_buildings_tiny",
            "tex_buildings_wall",
        ],
    }
    wall = _decoded(found["buildings"][3])
    assert (wall.mode, wall.size) == ("RGB", (64, 32))
    assert found["buildings"][2].render() == b""


def test_nexuiz_classes_by_folder_word_without_maps(tmp_path: Path) -> None:
    archive = _pk3(
        tmp_path / "textures.pk3",
        {
            "textures/evil4_techwalls/panel.jpg": _image_bytes((32, 32), (1, 0, 0), "JPEG"),
            "textures/evil4_techwalls/panel_norm.tga": _image_bytes((32, 32), (2, 0, 0), "TGA"),
            "textures/evil4_techwalls/panel_gloss.tga": _image_bytes((32, 32), (3, 0, 0), "TGA"),
            "textures/evil4_techwalls/plate_red.jpg": _image_bytes((32, 32), (9, 0, 0), "JPEG"),
            "textures/evil4_techwalls/plate_blue.jpg": _image_bytes((32, 32), (0, 0, 9), "JPEG"),
            "textures/egyptsoc_trim/band.tga": _image_bytes((64, 16), (4, 0, 0), "TGA"),
            "textures/egyptsoc_sfx/flare.jpg": _image_bytes((32, 32), (5, 0, 0), "JPEG"),
            "textures/trak4/trak4_floor.jpg": _image_bytes((32, 32), (6, 0, 0), "JPEG"),
            "textures/terrain_alphafade/alpha_000.tga": _image_bytes((32, 32), (7, 0, 0), "TGA"),
            "textures/terrain_data/grass.tga": _image_bytes((32, 32), (8, 0, 0), "TGA"),
            "textures/skin.tga": _image_bytes((32, 32), (9, 9, 0), "TGA"),
        },
    )

    found = textures._nexuiz(archive)

    assert _names(found) == {
        "terrain": ["terrain_data_grass"],
        "trim": ["egyptsoc_trim_band"],
        "wall": [
            "evil4_techwalls_panel",
            "evil4_techwalls_plate_blue",
            "evil4_techwalls_plate_red",
        ],
    }
    plates = [c.group for c in found["wall"][1:]]
    assert plates == ["wall/plate", "wall/plate"]
    band = _decoded(found["trim"][0])
    assert (band.mode, band.size) == ("RGB", (64, 16))


# --- sprites -------------------------------------------------------------------------


def test_supertux_gives_one_frame_per_object_and_per_tile(tmp_path: Path) -> None:
    root = tmp_path / "images"
    snowball = root / "creatures" / "snowball"
    _image(snowball / "aaa-editor.png", (30, 30), (1, 1, 1, 255))
    _image(snowball / "walk-0.png", (20, 20), (2, 2, 2, 255))
    _image(snowball / "walk-1.png", (21, 21), (3, 3, 3, 255))
    (snowball / "snowball.sprite").write_text(
        '(supertux-sprite (action (name "left") (images "walk-0.png" "walk-1.png")))'
    )
    _image(root / "creatures" / "bird" / "bird.png", (8, 8), (4, 4, 4, 255))
    _image(root / "creatures" / "bird" / "fly-0.png", (24, 24), (5, 5, 5, 255))
    _image(root / "creatures" / "tux" / "small" / "walk-0.png", (26, 26), (6, 6, 6, 255))
    _image(root / "objects" / "coin" / "coin-0.png", (32, 32), (7, 7, 7, 255))
    _image(root / "objects" / "coin" / "coin-1.png", (32, 32), (8, 8, 8, 255))
    _image(root / "powerups" / "star" / "star.png", (28, 28), (9, 9, 9, 255))
    _image(root / "tiles" / "forest" / "grass-0.png", (32, 32), (10, 10, 10, 255))
    _image(root / "tiles" / "forest" / "grass-1.png", (33, 33), (11, 11, 11, 255))
    _image(root / "tiles" / "forest" / "rock.png", (34, 34), (12, 12, 12, 255))
    _image(root / "tiles" / "forest" / "sheet.png", (600, 64), (13, 13, 13, 255))
    _image(root / "tiles" / "signs" / "arrow.png", (32, 32), (14, 14, 14, 255))
    _image(root / "worldmap" / "forest" / "map.png", (32, 32), (15, 15, 15, 255))

    found = sprites._supertux(root)

    assert _names(found) == {
        "creatures": ["creatures_bird", "creatures_snowball", "creatures_tux"],
        "objects": ["objects_coin", "powerups_star"],
        "tiles": ["tiles_forest_grass-0", "tiles_forest_rock"],
    }
    sizes = {c.name: _decoded(c).size for cs in found.values() for c in cs}
    assert sizes["creatures_snowball"] == (20, 20)  # the .sprite's first frame
    assert sizes["creatures_bird"] == (24, 24)  # bird.png is under 16 px
    assert sizes["powerups_star"] == (28, 28)  # named like its folder
    assert [c.group for c in found["tiles"]] == ["tiles/forest/grass", "tiles/forest/rock"]


# --- photos --------------------------------------------------------------------------


def _qstring(text: str) -> bytes:
    data = text.encode("utf-16-be")
    return struct.pack(">I", len(data)) + data


def _dso_record(record: int, kind: int, **numbers: int) -> bytes:
    """One catalogue record in Stellarium's DSO format 3.x layout."""
    columns: tuple[str, ...] = ("NGC", "IC", "M", "C", "B", "Sh2", "VdB", "RCW", "LDN")
    columns += ("LBN", "Cr", "Mel", "PGC", "UGC")
    out = struct.pack(">IddddI", record, 0.1, 0.2, 99.0, 9.5, kind) + _qstring("Sb")
    out += struct.pack(">ddidddddd", 1.0, 0.5, 30, 99.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    out += struct.pack(">14I", *(numbers.get(c, 0) for c in columns)) + _qstring("")
    out += struct.pack(">II", 0, 0) + b"".join(_qstring("") for _ in range(7))
    return out + struct.pack(">5I", 0, 0, 0, 0, 0)


def _catalog(path: Path, records: list[bytes], version: str = "3.16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(_qstring(version) + _qstring("standard") + b"".join(records)))
    return path


def test_stellarium_sky_labels_photos_by_catalogue_type(tmp_path: Path) -> None:
    root = tmp_path / "nebulae" / "default"
    _catalog(
        root / "catalog.dat",
        [
            _dso_record(1, 0, M=31, NGC=224),
            _dso_record(2, 17, NGC=7000),
            _dso_record(3, 7, M=13),
            _dso_record(4, 28, M=40),
        ],
    )
    for name in ("m31", "n224", "n7000-vasey", "m13", "m40", "pleiades"):
        _image(root / f"{name}.png", (64, 64), (20, 20, 40), "RGB")

    found = photos._stellarium_sky(root)

    assert _names(found) == {
        "galaxy": ["m31", "n224"],
        "globular-cluster": ["m13"],
        "nebula": ["n7000-vasey"],
    }
    assert found["galaxy"][0].group == found["galaxy"][1].group


@pytest.mark.parametrize(
    ("version", "records", "message"),
    [
        ("2.1", [_dso_record(1, 0, M=1)], "format '2.1'"),
        ("3.16", [_dso_record(1, 0, M=1), _dso_record(5, 0, M=2)], "record 2 reads as 5"),
    ],
)
def test_read_dso_types_rejects_an_unknown_layout(
    tmp_path: Path, version: str, records: list[bytes], message: str
) -> None:
    catalog = _catalog(tmp_path / "catalog.dat", records, version)
    with pytest.raises(ValueError, match=message):
        photos.read_dso_types(catalog)


@pytest.mark.parametrize(
    ("licence", "allowed"),
    [
        ("CC BY-SA 4.0 International Public License + Free Art License", True),
        ("GNU GPL v2.0", True),
        ("CC BY-SA 3.0 Unported", True),
        ("CC BY-ND 4.0 International Public License", False),
        ("CC BY-NC-SA 4.0 International Public License", False),
        ("CC BY-NC 4.0 International Public License", False),
        ("", False),
    ],
)
def test_allows_derivatives(licence: str, allowed: bool) -> None:
    assert photos.allows_derivatives(licence) is allowed


def _culture(root: Path, name: str, licence: str | None, art: dict[str, bytes]) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    lines = ["\ufeff[info]", f"name = {name}"] + ([f"license = {licence}"] if licence else [])
    (folder / "info.ini").write_text("\n".join(lines) + "\n", encoding="utf-8")
    fab = ["# art"] + [f"C{i} {file} 1 2 3 4 5 6 7 8 9" for i, file in enumerate(art)]
    (folder / "constellationsart.fab").write_text("\n".join(fab) + "\n")
    for file, data in art.items():
        (folder / file).write_bytes(data)
    (folder / "illustration.png").write_bytes(_image_bytes((32, 32), (99, 99, 99)))


def test_stellarium_art_keeps_free_cultures_and_their_own_drawings(tmp_path: Path) -> None:
    root = tmp_path / "skycultures"
    shared = _image_bytes((40, 40), (2, 2, 2))
    western = {"a.png": _image_bytes((40, 40), (1, 1, 1)), "b.png": shared}
    _culture(root, "western", "CC BY-SA 4.0 + Free Art License", western)
    _culture(root, "chinese_contemporary", "CC BY-SA 4.0 + Free Art License", western)
    _culture(
        root,
        "indian",
        "CC BY-SA 4.0",
        {"b.png": shared, "c.png": _image_bytes((40, 40), (3, 3, 3))},
    )
    _culture(root, "maya", "CC BY-NC-SA 4.0", {"d.png": _image_bytes((40, 40), (4, 4, 4))})
    _culture(root, "vanuatu_netwar", None, {"e.png": _image_bytes((40, 40), (5, 5, 5))})

    found = photos._stellarium_art(root)

    assert _names(found) == {"indian": ["c"], "western": ["a"]}


# --- a missing package ---------------------------------------------------------------

COLLECTORS: list[tuple[Callable[[Path], Classes], str]] = [
    (icons._paper, "paper-icon-theme"),
    (icons._mate, "mate-icon-theme"),
    (textures._ufoai, "ufoai-textures"),
    (textures._nexuiz, "nexuiz-textures"),
    (sprites._supertux, "supertux-data"),
    (photos._stellarium_sky, "stellarium-data"),
    (photos._stellarium_art, "stellarium-data"),
]


@pytest.mark.parametrize(("collect", "package"), COLLECTORS)
def test_a_missing_package_is_one_line_naming_it(
    tmp_path: Path, collect: Callable[[Path], Classes], package: str
) -> None:
    with pytest.raises(SourceMissing) as raised:
        collect(tmp_path / "absent")
    message = str(raised.value)
    assert "\n" not in message
    assert f"apt-get install {package}" in message


# --- the real packages ---------------------------------------------------------------


def _installed(source: Source, path: Path) -> Classes:
    if not path.exists():
        pytest.skip(f"{source.packages[0]} is not installed")
    return source.collect()


def _big(found: Classes, least: int) -> set[str]:
    return {label for label, candidates in found.items() if len(candidates) >= least}


def _check_renders(found: Classes, per_class: int = 1, classes: int = 3) -> None:
    for candidates in list(found.values())[:classes]:
        for candidate in candidates[:per_class]:
            image = _decoded(candidate)
            assert image.format == "PNG"
            assert image.mode in ("RGB", "RGBA")
            assert max(image.size) <= MAX_SIDE


def _check_listing(found: Classes) -> None:
    for label, candidates in found.items():
        assert label == label.lower() and " " not in label and "_" not in label
        names = [c.name for c in candidates]
        assert len(set(names)) == len(names), label


def test_real_paper() -> None:
    found = _installed(icons.PAPER, icons.PAPER_ROOT)
    _check_listing(found)
    assert len(_big(found, 40)) >= 4
    _check_renders(found)


def test_real_mate() -> None:
    found = _installed(icons.MATE, icons.MATE_ROOT)
    _check_listing(found)
    assert len(_big(found, 40)) >= 3
    assert "animations" not in found
    _check_renders(found)


def test_real_ufoai() -> None:
    found = _installed(textures.UFOAI, textures.UFOAI_PK3)
    _check_listing(found)
    assert len(_big(found, 40)) >= 6
    assert "trak" not in found
    assert not any(c.name.endswith(("_nm", "_sm", "_gm")) for cs in found.values() for c in cs)
    _check_renders(found)


def test_real_nexuiz() -> None:
    found = _installed(textures.NEXUIZ, textures.NEXUIZ_PK3)
    _check_listing(found)
    assert {"trim", "wall", "floor", "metal"} <= _big(found, 40)
    _check_renders(found)


def test_real_supertux() -> None:
    found = _installed(sprites.SUPERTUX, sprites.SUPERTUX_ROOT)
    _check_listing(found)
    assert {"creatures", "objects", "tiles"} <= _big(found, 40)
    for candidates in found.values():
        assert len({c.group for c in candidates}) == len(candidates)
    _check_renders(found)


def test_real_stellarium_catalogue() -> None:
    catalog = photos.NEBULAE / "catalog.dat"
    if not catalog.exists():
        pytest.skip("stellarium-data is not installed")
    types = photos.read_dso_types(catalog)
    # Andromeda is a galaxy, M13 a globular cluster, the Ring a planetary nebula.
    assert [types[("M", n)][1] for n in (31, 13, 57)] == [0, 7, 11]


def test_real_stellarium_sky() -> None:
    found = _installed(photos.STELLARIUM_SKY, photos.NEBULAE)
    _check_listing(found)
    assert len(_big(found, 40)) >= 4
    _check_renders(found, classes=2)


def test_real_stellarium_art() -> None:
    found = _installed(photos.STELLARIUM_ART, photos.SKYCULTURES)
    _check_listing(found)
    assert "chinese-contemporary" not in found
    assert not {"maya", "greek-farnese", "arabic-al-sufi"} & set(found)
    assert len(_big(found, 20)) >= 3
    _check_renders(found, classes=2)
