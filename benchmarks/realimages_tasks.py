"""The real-image benchmark's tasks: their Debian sources, and each task built into fixed
``train/ val/ test/`` class folders per seed (see ``benchmarks/realimages.py``)."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Shares of each class's images in val and test (train gets the rest).
VAL_SHARE = TEST_SHARE = 0.25
#: At most this many images of a class; fewer than the minimum means the source changed.
PER_CLASS = 80
MIN_PER_CLASS = 45
#: Bump when a task's images change, so that stored pools are rebuilt.
POOL_VERSION = 1

ICONS = Path("/usr/share/icons")
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
WESNOTH_UNITS = Path("/usr/share/games/wesnoth/1.16/data/core/images/units")


class SourceMissing(RuntimeError):
    """A task's Debian package is not installed."""


@dataclass(frozen=True)
class Candidate:
    """One image a task may use: ``render()`` gives its PNG bytes (empty: unusable).

    Images of one ``group`` (the frames of one Wesnoth unit) always share a split.
    """

    name: str
    group: str
    render: Callable[[], bytes]
    #: the group's own image (``fighter.png`` of the unit ``fighter``), taken first
    primary: bool = False


@dataclass(frozen=True)
class Task:
    """A benchmark task: its sources and how to list its candidate images by class."""

    name: str
    summary: str
    #: (Debian package, a path it installs) for every source the task reads.
    packages: tuple[tuple[str, Path], ...]
    collect: Callable[[], dict[str, list[Candidate]]]
    #: At most this many images of one group (``None``: no limit).
    per_group: int | None = None


# --- sources -------------------------------------------------------------------------


def _size_and_folder(outer: str, inner: str) -> tuple[int, str] | None:
    """``("48x48", "apps")`` or ``("apps", "48")`` -> ``(48, "apps")``; else ``None``."""
    for size, folder in ((outer, inner), (inner, outer)):
        match = re.fullmatch(r"(\d+)(?:x\d+)?", size)
        if match:
            return int(match.group(1)), folder
    return None


def icon_candidates(theme: Path, folders: Sequence[str]) -> dict[str, list[Candidate]]:
    """Every icon of a theme's category ``folders`` once, as its largest PNG of 32-256 px.

    Links are left out: each points at a file that counts under its own name.
    """
    largest: dict[tuple[str, str], tuple[int, Path]] = {}
    layouts = [f"*/{folder}/*.png" for folder in folders] + [f"{f}/*/*.png" for f in folders]
    for path in sorted({path for pattern in layouts for path in theme.glob(pattern)}):
        found = _size_and_folder(path.parent.parent.name, path.parent.name)
        if found is None or not 32 <= found[0] <= 256 or path.is_symlink():
            continue
        key = (found[1], path.stem)
        if key not in largest or largest[key][0] < found[0]:
            largest[key] = (found[0], path)
    out: dict[str, list[Candidate]] = {folder: [] for folder in folders}
    for (folder, stem), (_, path) in sorted(largest.items()):
        out[folder].append(Candidate(stem, stem, path.read_bytes))
    return out


def _oxygen() -> dict[str, list[Candidate]]:
    folders = ("actions", "apps", "devices", "mimetypes", "places", "status")
    return icon_candidates(ICONS / "oxygen" / "base", folders)


def _elementary() -> dict[str, list[Candidate]]:
    folders = ("actions", "apps", "categories", "devices", "mimes", "status")
    return icon_candidates(ICONS / "elementary-xfce", folders)


#: Unicode emoji groups used as classes (Component and Flags hold almost no single
#: code points).
EMOJI_GROUPS = (
    "Smileys & Emotion",
    "People & Body",
    "Animals & Nature",
    "Food & Drink",
    "Travel & Places",
    "Activities",
    "Objects",
    "Symbols",
)


def emoji_by_group(test_file: Path = EMOJI_TEST) -> dict[str, list[str]]:
    """The fully-qualified single-code-point emoji of each group of ``emoji-test.txt``.

    Sequences (flags, skin tones, ZWJ) are left out: they need text shaping to render.
    """
    out: dict[str, list[str]] = {group: [] for group in EMOJI_GROUPS}
    group = ""
    for line in test_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif "; fully-qualified" in line and group in out:
            points = [p for p in line.split(";")[0].split() if p != "FE0F"]
            if len(points) == 1:
                out[group].append(chr(int(points[0], 16)))
    return out


@functools.lru_cache(maxsize=1)
def _emoji_font() -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(str(EMOJI_FONT), size=109)  # the font's one bitmap size


def render_emoji(char: str) -> bytes:
    """One emoji in colour on a transparent square, as PNG (empty if the font lacks it)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGBA", (160, 160))
    ImageDraw.Draw(canvas).text((12, 16), char, font=_emoji_font(), embedded_color=True)
    box = canvas.getbbox()
    if box is None:
        return b""
    glyph = canvas.crop(box)
    side = max(glyph.size) + 8
    square = Image.new("RGBA", (side, side))
    square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    buffer = io.BytesIO()
    square.save(buffer, format="PNG")
    return buffer.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _emoji() -> dict[str, list[Candidate]]:
    return {
        _slug(group): [
            Candidate(f"{ord(c):x}", f"{ord(c):x}", functools.partial(render_emoji, c))
            for c in chars
        ]
        for group, chars in emoji_by_group().items()
    }


#: Race classes -> their unit folders (undead-skeletal are undead too).
WESNOTH_RACES = {
    "drakes": ("drakes",),
    "dwarves": ("dwarves",),
    "elves-wood": ("elves-wood",),
    "human-loyalists": ("human-loyalists",),
    "merfolk": ("merfolk",),
    "orcs": ("orcs",),
    "undead": ("undead", "undead-skeletal"),
}


def _wesnoth() -> dict[str, list[Candidate]]:
    """Unit sprites by race; a unit (a sub-folder, or the first word of the file name:
    ``fighter-ne-run3.png``) is a group, so no unit has frames on both sides of a split."""
    out: dict[str, list[Candidate]] = {}
    for race, folders in WESNOTH_RACES.items():
        out[race] = []
        for folder in folders:
            root = WESNOTH_UNITS / folder
            for path in sorted(root.rglob("*.png")):
                rel = path.relative_to(root)
                unit = rel.parts[0] if len(rel.parts) > 1 else re.split(r"[-+]", path.stem)[0]
                name = f"{folder}_{'_'.join(rel.with_suffix('').parts)}"
                group = f"{folder}/{unit}"
                out[race].append(Candidate(name, group, path.read_bytes, path.stem == unit))
    return out


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "oxygen-icons",
            "Oxygen icon theme (KDE), icons by category folder",
            (("oxygen-icon-theme", ICONS / "oxygen" / "base"),),
            _oxygen,
        ),
        Task(
            "elementary-icons",
            "elementary Xfce icon theme, icons by category folder",
            (("elementary-xfce-icon-theme", ICONS / "elementary-xfce"),),
            _elementary,
        ),
        Task(
            "noto-emoji",
            "Noto Color Emoji glyphs by Unicode emoji group",
            (("fonts-noto-color-emoji", EMOJI_FONT), ("unicode-data", EMOJI_TEST)),
            _emoji,
        ),
        Task(
            "wesnoth-units",
            "Battle for Wesnoth unit sprites by race, split by unit",
            (("wesnoth-1.16-data", WESNOTH_UNITS),),
            _wesnoth,
            per_group=4,
        ),
    )
}


def check_sources(task: Task) -> None:
    """Raise :class:`SourceMissing` (one line, naming the package) unless installed."""
    for package, path in task.packages:
        if not path.exists():
            raise SourceMissing(
                f"task {task.name} needs the Debian package {package} ({path} is missing): "
                f"run `make system-packages` as root or `sudo apt-get install {package}`"
            )


def package_version(package: str) -> str | None:
    """The installed version of a Debian package (``None`` when unknown)."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
        )
    except OSError:
        return None
    return done.stdout.strip() or None


# --- building the tasks --------------------------------------------------------------

#: class -> [(image name, group)] of a built pool.
Pool = dict[str, list[tuple[str, str]]]


def _order(text: str) -> str:
    """A stable pseudo-random order of names, the same on every machine."""
    return hashlib.sha1(text.encode()).hexdigest()


def _in_turns(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates in a fixed order, a group at a time: every group's first image (its
    primary one, else the first in a stable order), then every group's second, ..."""
    groups: dict[str, list[Candidate]] = {}
    for c in sorted(candidates, key=lambda c: (not c.primary, _order(c.name))):
        groups.setdefault(c.group, []).append(c)
    turns = [(turn, _order(group), c) for group, cs in groups.items() for turn, c in enumerate(cs)]
    return [c for _, _, c in sorted(turns, key=lambda t: t[:2])]


def select(
    task: Task, candidates: list[Candidate], seen: set[str]
) -> list[tuple[Candidate, bytes]]:
    """Up to :data:`PER_CLASS` images of one class, and ``task.per_group`` of a group,
    with their PNG bytes, none equal to another or to one in ``seen`` (digests, updated);
    the same on every machine with the same package."""
    chosen: list[tuple[Candidate, bytes]] = []
    per_group: dict[str, int] = {}
    for candidate in _in_turns(candidates):
        if task.per_group and per_group.get(candidate.group, 0) >= task.per_group:
            continue
        data = candidate.render()
        digest = hashlib.sha1(data).hexdigest()
        if not data or digest in seen:
            continue
        seen.add(digest)
        per_group[candidate.group] = per_group.get(candidate.group, 0) + 1
        chosen.append((candidate, data))
        if len(chosen) == PER_CLASS:
            break
    return chosen


def build_pool(task: Task, work: Path) -> Pool:
    """Write the task's images once to ``<work>/pool/<task>/<class>/<name>.png``.

    A pool already there (same :data:`POOL_VERSION`) is reused.

    Raises:
        SourceMissing: a source package is not installed.
        RuntimeError: a class has fewer than :data:`MIN_PER_CLASS` images.
    """
    check_sources(task)
    root = work / "pool" / task.name
    manifest = root / "manifest.json"
    if manifest.is_file():
        stored = json.loads(manifest.read_text())
        if stored.get("version") == POOL_VERSION:
            return {c: [(n, g) for n, g in items] for c, items in stored["classes"].items()}
    shutil.rmtree(root, ignore_errors=True)
    pool: Pool = {}
    seen: set[str] = set()
    for cls, candidates in task.collect().items():
        chosen = select(task, candidates, seen)
        if len(chosen) < MIN_PER_CLASS:
            raise RuntimeError(
                f"task {task.name}: class {cls} has {len(chosen)} images, fewer than "
                f"{MIN_PER_CLASS}; its source package changed"
            )
        (root / cls).mkdir(parents=True)
        for candidate, data in chosen:
            (root / cls / f"{candidate.name}.png").write_bytes(data)
        pool[cls] = sorted((c.name, c.group) for c, _ in chosen)
    manifest.write_text(json.dumps({"version": POOL_VERSION, "classes": pool}, indent=1))
    return pool


def split_pool(pool: Pool, task: str, seed: int) -> dict[str, dict[str, list[str]]]:
    """``{split: {class: image names}}``: a stratified split seeded by ``seed``.

    Per class, its groups are shuffled and dealt to ``test`` until it holds
    :data:`TEST_SHARE` of the class's images, then to ``val``, the rest to ``train``: a
    class of ungrouped images is split exactly so.
    """
    out: dict[str, dict[str, list[str]]] = {"train": {}, "val": {}, "test": {}}
    for cls, items in sorted(pool.items()):
        groups: dict[str, list[str]] = {}
        for name, group in items:
            groups.setdefault(group, []).append(name)
        order = sorted(groups)
        random.Random(f"{task}/{cls}/{seed}").shuffle(order)
        wanted = {"test": round(TEST_SHARE * len(items)), "val": round(VAL_SHARE * len(items))}
        dealt: dict[str, list[str]] = {"test": [], "val": [], "train": []}
        for group in order:
            split = next((s for s in ("test", "val") if len(dealt[s]) < wanted[s]), "train")
            dealt[split].extend(groups[group])
        if not all(dealt.values()):
            raise RuntimeError(f"task {task}: class {cls} has too few groups for three splits")
        for split, names in dealt.items():
            out[split][cls] = sorted(names)
    return out


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links there
        shutil.copyfile(source, target)


def build_task(task: Task, work: Path, seed: int) -> tuple[Path, Path]:
    """``(split folder, fit view)`` of one task and seed, built afresh from its pool.

    The split folder is ``<work>/tasks/<task>/seed<k>/{train,val,test}/<class>/``; the fit
    view ``<work>/fit/<task>-seed<k>/`` links to its ``train/`` and ``val/`` only.
    """
    pool = build_pool(task, work)
    folder = work / "tasks" / task.name / f"seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    for split, classes in split_pool(pool, task.name, seed).items():
        for cls, names in classes.items():
            source, target = work / "pool" / task.name / cls, folder / split / cls
            target.mkdir(parents=True)
            for name in names:
                _link(source / f"{name}.png", target / f"{name}.png")
    fit = work / "fit" / f"{task.name}-seed{seed}"
    shutil.rmtree(fit, ignore_errors=True)
    fit.mkdir(parents=True)
    for split in ("train", "val"):
        (fit / split).symlink_to(Path("..", "..", "tasks", task.name, f"seed{seed}", split))
    return folder, fit


def split_items(folder: Path) -> tuple[list[Path], list[str]]:
    """``(image paths, class names)`` of one split folder, in a fixed order."""
    paths = sorted(folder.glob("*/*.png"))
    return paths, [p.parent.name for p in paths]
