"""The real-image benchmark's task builder: splits are disjoint, fixed per seed,
stratified and hold every class; a missing source is one line naming its package."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import realimages, realimages_tasks
from benchmarks.realimages_tasks import (
    TASKS,
    TEST_SHARE,
    VAL_SHARE,
    SourceMissing,
    Task,
    build_pool,
    build_task,
    check_sources,
    split_items,
)
from mlsel.kernel.images import decode

# One task of ungrouped images (exact stratified split) and one split by group (unit).
BUILT = ("elementary-icons", "wesnoth-units")
SPLITS = ("train", "val", "test")


def _installed(name: str) -> Task:
    task = TASKS[name]
    try:
        check_sources(task)
    except SourceMissing as exc:
        pytest.skip(f"source not installed: {exc}")
    return task


def _listing(folder: Path) -> dict[str, list[str]]:
    return {s: [f"{p.parent.name}/{p.name}" for p in split_items(folder / s)[0]] for s in SPLITS}


@pytest.mark.parametrize("name", BUILT)
def test_splits_are_disjoint_fixed_per_seed_stratified_and_hold_every_class(
    name: str, tmp_path: Path
) -> None:
    task = _installed(name)
    pool = build_pool(task, tmp_path / "one")
    seed0, fit0 = build_task(task, tmp_path / "one", 0)
    again, _ = build_task(task, tmp_path / "two", 0)
    seed1, _ = build_task(task, tmp_path / "one", 1)
    listing = _listing(seed0)

    assert listing == _listing(again)  # fixed per seed, whatever the work folder
    assert listing != _listing(seed1)  # another seed, another split of the same images
    assert sorted(sum(listing.values(), [])) == sorted(sum(_listing(seed1).values(), []))
    every = [image for split in SPLITS for image in listing[split]]
    assert len(every) == len(set(every)) == sum(len(items) for items in pool.values())

    group = {f"{cls}/{n}.png": g for cls, items in pool.items() for n, g in items}
    for cls, items in pool.items():
        counts = {s: sum(i.startswith(f"{cls}/") for i in listing[s]) for s in SPLITS}
        assert min(counts.values()) > 0, (cls, counts)
        slack = task.per_group or 0  # a group moves whole
        assert abs(counts["test"] - TEST_SHARE * len(items)) <= slack + 0.5
        assert abs(counts["val"] - VAL_SHARE * len(items)) <= slack + 0.5
    groups_of = {s: {group[i] for i in listing[s]} for s in SPLITS}
    assert not groups_of["train"] & groups_of["val"]
    assert not groups_of["train"] & groups_of["test"]
    assert not groups_of["val"] & groups_of["test"]

    # The mlsel arms' view holds train and val and nothing of test.
    assert sorted(p.name for p in fit0.iterdir()) == ["train", "val"]
    assert _listing(fit0)["train"] == listing["train"]
    first = split_items(seed0 / "test")[0][0]
    assert decode(first, 32).shape == (32, 32, 3)


def test_emoji_groups_are_read_from_unicode_data() -> None:
    _installed("noto-emoji")
    groups = realimages_tasks.emoji_by_group()
    assert len(groups) == 8 and min(len(chars) for chars in groups.values()) >= 80
    assert "\N{FOX FACE}" in groups["Animals & Nature"]
    assert realimages_tasks.render_emoji("\N{FOX FACE}").startswith(b"\x89PNG")


def test_a_missing_source_is_one_line_naming_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = Task("fake", "none", (("fake-images-pkg", tmp_path / "absent"),), dict)
    monkeypatch.setitem(realimages_tasks.TASKS, "fake", missing)

    code = realimages.main(["--tasks", "fake", "--build-only", "--out", str(tmp_path)])

    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "fake-images-pkg" in err
