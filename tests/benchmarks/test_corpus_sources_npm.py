"""The npm corpus sources: fetching is atomic and safe, a missing npm is one line, and
Twemoji, OpenMoji and Tabler list base images by class and render visible PNGs.

Every test but the last runs on small fake packages under tmp_path, without network.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.bundle.sources import drawings, emoji, npm
from benchmarks.bundle.sources._base import MAX_SIDE, Candidate, SourceMissing

needs_rsvg = pytest.mark.skipif(
    shutil.which("rsvg-convert") is None, reason="rsvg-convert (librsvg2-bin) is not installed"
)

TABLER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24" '
    'fill="none" stroke="currentColor" stroke-width="2"><path d="M6 12h12M12 6v12"/></svg>'
)
OPENMOJI_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72">'
    '<circle cx="36" cy="36" r="30" fill="#FCEA2B" stroke="#000" stroke-width="2"/></svg>'
)


def _png(path: Path, colour: tuple[int, int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", (8, 8), colour).save(path)


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty source cache that every source reads (``$MLSEL_SOURCES_DIR``)."""
    root = tmp_path / "sources"
    monkeypatch.setenv(npm.CACHE_ENV, str(root))
    return root


@pytest.fixture
def no_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def _fake_twemoji(cache: Path) -> Path:
    root = npm.package_dir(emoji.TWEMOJI_NPM)
    entries = [
        {
            "unified": "1F600",
            "image": "1f600.png",
            "category": "Smileys & Emotion",
            "subcategory": "face-smiling",
            "has_img_twitter": True,
        },
        {
            "unified": "1F44B",
            "image": "1f44b.png",
            "category": "Smileys & Emotion",
            "subcategory": "hand-fingers-open",
            "has_img_twitter": True,
            "skin_variations": {"1F3FB": {"unified": "1F44B-1F3FB", "image": "1f44b-1f3fb.png"}},
        },
        {
            "unified": "1F436",
            "image": "1f436.png",
            "category": "Animals & Nature",
            "subcategory": "animal-mammal",
        },
        {
            "unified": "1F3FB",
            "image": "1f3fb.png",
            "category": "Component",
            "subcategory": "skin-tone",
        },
        {
            "unified": "1F47D",
            "image": "1f47d.png",
            "category": "Smileys & Emotion",
            "subcategory": "face-costume",
            "has_img_twitter": False,
        },
    ]
    root.mkdir(parents=True)
    (root / "emoji.json").write_text(json.dumps(entries))
    images = root / "img" / "twitter" / "64"
    for name in ("1f600", "1f44b", "1f44b-1f3fb", "1f3fb", "1f47d"):
        _png(images / f"{name}.png", (250, 200, 0, 255))
    # Not yet opened by collect(): a broken file only fails when rendered.
    images.joinpath("1f436.png").write_bytes(b"not a png")
    return root


def test_package_dir_follows_npm_tarball_names(tmp_path: Path) -> None:
    assert npm.package_dir("@tabler/icons@3.52.0", tmp_path) == (
        tmp_path / "npm" / "tabler-icons-3.52.0" / "package"
    )
    with pytest.raises(ValueError, match="exact version"):
        npm.package_dir("openmoji@^17", tmp_path)
    with pytest.raises(ValueError, match="exact version"):
        npm.package_dir("openmoji", tmp_path)


def test_default_cache_is_the_checkout_or_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(npm.CACHE_ENV, raising=False)
    repo = Path(npm.__file__).resolve().parents[3]
    assert npm.default_cache() == repo / "benchmarks" / "out" / "sources"
    monkeypatch.setenv(npm.CACHE_ENV, "/elsewhere")
    assert npm.default_cache() == Path("/elsewhere")


def test_missing_npm_is_one_line_naming_the_fix(cache: Path, no_npm: None) -> None:
    with pytest.raises(SourceMissing) as caught:
        npm.npm_package("openmoji@17.0.0")
    message = str(caught.value)
    assert "\n" not in message
    assert "openmoji@17.0.0" in message and "make corpus-sources" in message
    assert not (cache / "npm").exists() or not any((cache / "npm").iterdir())


def test_cached_package_needs_no_npm(cache: Path, no_npm: None) -> None:
    root = npm.package_dir("openmoji@17.0.0")
    root.mkdir(parents=True)
    assert npm.npm_package("openmoji@17.0.0") == root


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_fetch_unpacks_into_place(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake ``npm`` that writes a tarball: the package lands whole, nothing else left."""
    tgz = _tarball(tmp_path / "made.tgz", {"package/package.json": b"{}"})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "npm"
    fake.write_text(f'#!/bin/sh\n[ "$1" = pack ] && cp "{tgz}" "$4/x-1.0.0.tgz"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    root = npm.npm_package("x@1.0.0")
    assert (root / "package.json").read_bytes() == b"{}"
    assert sorted(p.name for p in (cache / "npm").iterdir()) == ["x-1.0.0"]


def test_failing_npm_is_source_missing(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "npm"
    fake.write_text("#!/bin/sh\necho 'npm error 404 Not Found' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    with pytest.raises(SourceMissing, match="404") as caught:
        npm.npm_package("nope@1.0.0")
    assert "\n" not in str(caught.value)
    assert not any((cache / "npm").iterdir())


@pytest.mark.parametrize("bad", ["package/../../evil.txt", "/tmp/evil.txt"])
def test_safe_extract_refuses_escaping_members(tmp_path: Path, bad: str) -> None:
    tgz = _tarball(tmp_path / "bad.tgz", {"package/ok.txt": b"ok", bad: b"evil"})
    out = tmp_path / "deep" / "out"
    with pytest.raises(SourceMissing, match="unsafe path"):
        npm.safe_extract(tgz, out)
    assert not out.exists()
    assert not (tmp_path / "evil.txt").exists()


def test_twemoji_keeps_base_emoji_by_category(cache: Path) -> None:
    _fake_twemoji(cache)
    listed = emoji.TWEMOJI.collect()
    assert {c: [x.name for x in v] for c, v in listed.items()} == {
        "animals-nature": ["1f436"],
        "smileys-emotion": ["1f44b", "1f600"],
    }
    first = listed["smileys-emotion"][1]
    assert first.group == "1F600"
    image = _decode(first.render())
    assert image.mode == "RGBA" and max(image.size) <= MAX_SIDE


def test_twemoji_subgroups_is_the_same_source(cache: Path) -> None:
    _fake_twemoji(cache)
    listed = emoji.TWEMOJI_SUBGROUPS.collect()
    assert sorted(listed) == ["animal-mammal", "face-smiling", "hand-fingers-open"]
    assert emoji.SAME_SOURCE == {emoji.TWEMOJI_SUBGROUPS.name: emoji.TWEMOJI.name}
    assert "ONE source" in emoji.TWEMOJI_SUBGROUPS.lineage
    with pytest.raises(ValueError, match="'by'"):
        emoji.twemoji_candidates(npm.package_dir(emoji.TWEMOJI_NPM), by="name")


def _fake_openmoji(cache: Path) -> None:
    root = npm.package_dir(emoji.OPENMOJI_NPM)
    entries = [
        {
            "hexcode": "1F600",
            "group": "smileys-emotion",
            "subgroups": "face-smiling",
            "skintone": "",
        },
        {"hexcode": "1F44B-1F3FB", "group": "people-body", "subgroups": "hand", "skintone": 1},
        {"hexcode": "1F3FB", "group": "component", "subgroups": "skin-tone", "skintone": ""},
        {"hexcode": "E000", "group": "extras-openmoji", "subgroups": "symbols", "skintone": ""},
    ]
    (root / "data").mkdir(parents=True)
    (root / "data" / "openmoji.json").write_text(json.dumps(entries))
    (root / "color" / "svg").mkdir(parents=True)
    for hexcode in ("1F600", "1F44B-1F3FB", "1F3FB", "E000"):
        (root / "color" / "svg" / f"{hexcode}.svg").write_text(OPENMOJI_SVG)


def test_openmoji_keeps_base_emoji_by_group(cache: Path) -> None:
    _fake_openmoji(cache)
    listed = emoji.OPENMOJI.collect()
    assert {c: [x.name for x in v] for c, v in listed.items()} == {
        "extras-openmoji": ["E000"],
        "smileys-emotion": ["1F600"],
    }


@needs_rsvg
def test_openmoji_renders_a_colour_png(cache: Path) -> None:
    _fake_openmoji(cache)
    image = _decode(emoji.OPENMOJI.collect()["smileys-emotion"][0].render())
    assert image.mode in ("RGB", "RGBA") and image.size == (128, 128)
    assert image.getchannel("A").getbbox() is not None


def _fake_tabler(cache: Path) -> None:
    outline = npm.package_dir(drawings.TABLER_NPM) / "categories" / "outline"
    for category, names in {
        "Mood": ("mood-happy", "mood-sad"),
        "Version control": ("git-branch",),
        "Brand": ("brand-github",),
    }.items():
        (outline / category).mkdir(parents=True)
        for name in names:
            (outline / category / f"{name}.svg").write_text(TABLER_SVG)


def test_tabler_lists_categories_without_brand(cache: Path) -> None:
    _fake_tabler(cache)
    listed = drawings.TABLER.collect()
    assert {c: [x.group for x in v] for c, v in listed.items()} == {
        "mood": ["mood-happy", "mood-sad"],
        "version-control": ["git-branch"],
    }


@needs_rsvg
def test_tabler_strokes_are_black_on_white(cache: Path) -> None:
    _fake_tabler(cache)
    image = _decode(drawings.TABLER.collect()["mood"][0].render())
    assert image.mode == "RGB" and image.size == (drawings.TABLER_SIDE, drawings.TABLER_SIDE)
    grey = image.convert("L")
    assert min(grey.getdata()) < 128
    last = drawings.TABLER_SIDE - 1
    for corner in ((0, 0), (0, last), (last, 0), (last, last)):
        assert grey.getpixel(corner) == 255


def test_on_white_of_an_empty_drawing_is_empty() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (8, 8)).save(out, format="PNG")
    assert drawings.on_white(out.getvalue()) == b""


def _real(spec: str) -> Path:
    root = Path(npm.__file__).resolve().parents[3] / "benchmarks" / "out" / "sources"
    folder = npm.package_dir(spec, root)
    if not folder.is_dir():
        pytest.skip(f"{spec} is not in {root} (run `make corpus-sources`)")
    return folder


@pytest.mark.parametrize(
    ("spec", "collect", "classes"),
    [
        (emoji.TWEMOJI_NPM, emoji.twemoji_candidates, 8),
        (emoji.OPENMOJI_NPM, emoji.openmoji_candidates, 10),
        (drawings.TABLER_NPM, drawings.tabler_candidates, 28),
    ],
)
def test_real_packages_have_the_researched_classes(
    spec: str, collect: Callable[[Path], dict[str, list[Candidate]]], classes: int
) -> None:
    """Listing only (nothing rendered): class counts near the research notes."""
    listed = collect(_real(spec))
    assert sum(len(v) >= 40 for v in listed.values()) >= classes
    assert "component" not in listed and "brand" not in listed
