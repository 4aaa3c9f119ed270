"""The Debian sources of the real detection tasks (``benchmarks/detect_tasks.py``):
wallpaper photographs for backgrounds, and object images by class (colour emoji by
Unicode subgroup, MATE icons by category folder), each dealt to one split for good.

``data_cards/sources/`` holds a card per package: licence, version, what is read.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.realimages_tasks import EMOJI_FONT, EMOJI_TEST, icon_candidates, render_emoji

SPLITS = ("train", "val", "test")
#: An object pixel counts as visible (and inside its box) from this alpha on.
ALPHA_VISIBLE = 128
#: At most this many object images a class; fewer than the minimum: the package changed.
PER_CLASS, MIN_PER_CLASS = 60, 10

MATE_ICONS = Path("/usr/share/icons/mate")
PLASMA = Path("/usr/share/wallpapers")
LOMIRI = Path("/usr/share/backgrounds")
#: The photographs among the wallpapers (the others are renders and drawings).
PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)  # fmt: skip
LOMIRI_PHOTOS = (
    "aitzgorri_by_Aitzol_Berasategi", "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly",
    "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
    "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
    "Picture_0B_by_freespace", "Picture_1A_by_freespace", "seeding_by_Clements_Engelhardt",
    "sunset_by_Aitzol_Berasategi", "Wine_by_Jakkub_Mede",
)  # fmt: skip
#: Wallpapers dealt to test and val (the rest train), in SHA-1 order of their names.
HELD_OUT_WALLPAPERS = 5
#: A wallpaper is loaded with its short side at most this long.
WALLPAPER_SIDE = 1080

BACKGROUND_PACKAGES = (
    ("plasma-workspace-wallpapers", PLASMA / "Path" / "contents" / "images"),
    ("lomiri-wallpapers-16.04", LOMIRI / "seeding_by_Clements_Engelhardt.jpg"),
)
EMOJI_PACKAGES = (("fonts-noto-color-emoji", EMOJI_FONT), ("unicode-data", EMOJI_TEST))
ICON_PACKAGES = (("mate-icon-theme", MATE_ICONS / "48x48"),)


@dataclass(frozen=True)
class ObjectClass:
    """A detection class: emoji of some Unicode subgroups, or one MATE icon folder."""

    kind: str  # "emoji" or "icon"
    members: tuple[str, ...]


_FACES = tuple(
    f"face-{s}"
    for s in (
        "smiling", "affection", "tongue", "hand", "neutral-skeptical", "sleepy",
        "unwell", "hat", "glasses", "concerned", "negative",
    )
)  # fmt: skip
#: Every class a task may use: the one catalogue of the objects.
CLASSES: dict[str, ObjectClass] = {
    "face": ObjectClass("emoji", _FACES),
    "mammal": ObjectClass("emoji", ("animal-mammal",)),
    "bird": ObjectClass("emoji", ("animal-bird",)),
    "produce": ObjectClass("emoji", ("food-fruit", "food-vegetable")),
    "ground-transport": ObjectClass("emoji", ("transport-ground",)),
    "clothing": ObjectClass("emoji", ("clothing",)),
    "sport": ObjectClass("emoji", ("sport",)),
    "devices": ObjectClass("icon", ("devices",)),
    "mimetypes": ObjectClass("icon", ("mimetypes",)),
    "places": ObjectClass("icon", ("places",)),
    "status": ObjectClass("icon", ("status",)),
    "apps": ObjectClass("icon", ("apps",)),
}


def packages_for(classes: Sequence[str]) -> tuple[tuple[str, Path], ...]:
    """(Debian package, a path it installs) of the backgrounds and of ``classes``."""
    kinds = {CLASSES[c].kind for c in classes}
    return (
        BACKGROUND_PACKAGES
        + (EMOJI_PACKAGES if "emoji" in kinds else ())
        + (ICON_PACKAGES if "icon" in kinds else ())
    )


def _order(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def wallpapers() -> dict[str, Path]:
    """Wallpaper name -> the photograph's file."""
    images = "contents/images/2560x1600.jpg"
    out = {f"plasma/{n}": PLASMA / n / images for n in PLASMA_PHOTOS}
    out.update({f"lomiri/{n}": LOMIRI / f"{n}.jpg" for n in LOMIRI_PHOTOS})
    return out


def wallpaper_splits() -> dict[str, list[str]]:
    """Split -> its wallpapers: :data:`HELD_OUT_WALLPAPERS` each to test and val."""
    order = sorted(wallpapers(), key=_order)
    n = HELD_OUT_WALLPAPERS
    return {"test": order[:n], "val": order[n : 2 * n], "train": order[2 * n :]}


@functools.cache
def wallpaper(name: str) -> Any:
    """A wallpaper as RGB, its short side at most :data:`WALLPAPER_SIDE` (cached)."""
    from PIL import Image

    with Image.open(wallpapers()[name]) as file:
        file.draft("RGB", (WALLPAPER_SIDE, WALLPAPER_SIDE))  # a JPEG decodes smaller
        image = file.convert("RGB")
    shrink = WALLPAPER_SIDE / min(image.size)
    if shrink < 1:
        size = (round(image.width * shrink), round(image.height * shrink))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def _emoji_by_subgroup() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    subgroup = ""
    for line in EMOJI_TEST.read_text(encoding="utf-8").splitlines():
        if line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif "; fully-qualified" in line:
            points = [p for p in line.split(";")[0].split() if p != "FE0F"]
            if len(points) == 1:  # sequences need text shaping to render
                out.setdefault(subgroup, []).append(chr(int(points[0], 16)))
    return out


def _raw_objects(cls: str) -> list[tuple[str, bytes]]:
    """(object name, PNG bytes) of every candidate image of a class."""
    spec = CLASSES[cls]
    if spec.kind == "emoji":
        groups = _emoji_by_subgroup()
        chars = [c for member in spec.members for c in groups.get(member, [])]
        return [(f"u{ord(c):x}", render_emoji(c)) for c in chars]
    found = icon_candidates(MATE_ICONS, spec.members)
    return [(c.name, c.render()) for m in spec.members for c in found[m]]


@functools.cache
def object_pool(cls: str) -> dict[str, list[tuple[str, Any]]]:
    """Split -> (name, RGBA image cropped to its alpha) of a class: at most
    :data:`PER_CLASS` in SHA-1 order of names, dealt in fives (test, val, 3 x train).

    Raises:
        RuntimeError: the class has fewer than :data:`MIN_PER_CLASS` images.
    """
    from PIL import Image

    chosen: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for name, data in sorted(_raw_objects(cls), key=lambda o: _order(f"{cls}/{o[0]}")):
        digest = hashlib.sha1(data).hexdigest()
        if not data or digest in seen:
            continue
        seen.add(digest)
        image = Image.open(io.BytesIO(data)).convert("RGBA")
        if visible_mask(image).any():
            chosen.append((name, image.crop(image.getchannel("A").getbbox())))
        if len(chosen) == PER_CLASS:
            break
    if len(chosen) < MIN_PER_CLASS:
        raise RuntimeError(
            f"detection class {cls} has {len(chosen)} images, fewer than {MIN_PER_CLASS}; "
            "its source package changed"
        )
    dealt: dict[str, list[tuple[str, Any]]] = {s: [] for s in SPLITS}
    for index, item in enumerate(chosen):
        dealt[("test", "val", "train", "train", "train")[index % 5]].append(item)
    return dealt


def scaled_object(image: Any, longer: int) -> Any:
    """An object image resized so its longer side is ``longer`` pixels."""
    from PIL import Image

    factor = longer / max(image.size)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def visible_mask(image: Any) -> Any:
    """Boolean array of the pixels of an RGBA image that count as the object."""
    import numpy as np

    return np.asarray(image.getchannel("A")) >= ALPHA_VISIBLE


# --- one image -----------------------------------------------------------------------


def busyness(image: Any, box: tuple[int, int, int, int] | None = None) -> float:
    """Background clutter: the mean absolute grey step between neighbouring pixels of
    ``image`` (or its ``box``) seen at 128 x 128, in grey levels."""
    import numpy as np

    grey = np.asarray(image.resize((128, 128), box=box).convert("L"), dtype=np.float32)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


@functools.cache
def clutter_wallpapers(split: str, clutter: str) -> tuple[str, ...]:
    """The split's wallpapers a task of that ``clutter`` crops: the plainer or busier
    half (by :func:`busyness`) for ``"plain"`` or ``"busy"``, else all of them."""
    names = wallpaper_splits()[split]
    if clutter not in ("plain", "busy"):
        return tuple(names)
    ranked = sorted(names, key=lambda n: busyness(wallpaper(n)), reverse=clutter == "busy")
    return tuple(ranked[: -(-len(ranked) // 2)])
