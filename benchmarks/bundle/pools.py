"""A source's images, rendered once into a pool that every task of the source draws from.

``build_pool(source, root)`` writes ``root/<source>/<class>/<name>.png`` and a
``manifest.json``. Per class it takes the candidates in an order fixed by SHA-1 of their
names (the same on every machine with the same package), at most one image of a group
(:attr:`Candidate.group`, unless ``per_group`` says more), never two images with the same
bytes (across the whole source, so an image filed under two classes counts once), and
at most ``cap`` images; classes left with fewer than ``min_images`` are dropped. A pool
already written with the same :data:`POOL_VERSION` and settings is read back instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bundle.sources._base import Candidate, Source

__all__ = ["POOL_VERSION", "Pool", "build_pool", "ordered"]

#: Bump when the pooled images of a source change, so that stored pools are rebuilt.
POOL_VERSION = 1
#: Most images a class keeps (the largest task asks 500 a class, plus its val split).
CAP = 540
#: Fewest images a class needs to be a class of any task (5 to train, 15 to validate).
MIN_IMAGES = 20


@dataclass(frozen=True)
class Pool:
    """A built pool: ``classes`` maps each class to its image files, in pool order."""

    source: str
    root: Path
    classes: dict[str, list[Path]]
    dropped: dict[str, int]  # classes left out, with their image counts

    def sizes(self) -> dict[str, int]:
        """Images per class."""
        return {c: len(paths) for c, paths in self.classes.items()}


def ordered(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates in a stable pseudo-random order: by SHA-1 of the name."""
    return sorted(candidates, key=lambda c: hashlib.sha1(c.name.encode()).hexdigest())


def _settings(cap: int, min_images: int, per_group: int) -> dict[str, int]:
    return {"version": POOL_VERSION, "cap": cap, "min_images": min_images, "per_group": per_group}


def _read(folder: Path, source: str, settings: dict[str, int]) -> Pool | None:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    stored = json.loads(manifest.read_text())
    if stored.get("settings") != settings:
        return None
    classes = {c: [folder / c / n for n in names] for c, names in stored["classes"].items()}
    return Pool(source, folder, classes, dict(stored.get("dropped", {})))


def build_pool(
    source: Source,
    root: Path,
    *,
    cap: int = CAP,
    min_images: int = MIN_IMAGES,
    per_group: int = 1,
) -> Pool:
    """Render ``source`` into ``root/<source.name>/`` (or read the pool already there).

    Raises:
        SourceMissing: the source's package is not installed.
    """
    settings = _settings(cap, min_images, per_group)
    folder = root / source.name
    found = _read(folder, source.name, settings)
    if found is not None:
        return found
    listed = source.collect()
    partial = root / f".{source.name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    seen: set[str] = set()
    classes: dict[str, list[str]] = {}
    dropped: dict[str, int] = {}
    for cls in sorted(listed):
        names: list[str] = []
        groups: dict[str, int] = {}
        for candidate in ordered(listed[cls]):
            if len(names) == cap:
                break
            if groups.get(candidate.group, 0) >= per_group:
                continue
            data = candidate.render()
            digest = hashlib.sha1(data).hexdigest()
            if not data or digest in seen:
                continue
            seen.add(digest)
            groups[candidate.group] = groups.get(candidate.group, 0) + 1
            name = f"{digest[:12]}.png"
            (partial / cls).mkdir(parents=True, exist_ok=True)
            (partial / cls / name).write_bytes(data)
            names.append(name)
        if len(names) < min_images:
            dropped[cls] = len(names)
            shutil.rmtree(partial / cls, ignore_errors=True)
        else:
            classes[cls] = names
    partial.mkdir(parents=True, exist_ok=True)
    manifest = {"settings": settings, "classes": classes, "dropped": dropped}
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return Pool(
        source.name, folder, {c: [folder / c / n for n in v] for c, v in classes.items()}, dropped
    )
