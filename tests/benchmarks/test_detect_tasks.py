"""The real detection tasks: YOLO boxes are the pasted objects' visible alpha bounds, every
label lies in [0, 1], mlsel reads a task as detection, a seed fixes the images, and no
object image or wallpaper spans two splits; a missing source is one line naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import detect_sources, detect_tasks
from benchmarks.detect_sources import SPLITS, object_pool, scaled_object, visible_mask
from benchmarks.detect_tasks import EASIEST, TASKS, SourceMissing, build_task, check_sources
from mlsel.profilers import read_dataset

# Whole objects apart (the easiest), and crowds cut by the border under lighting jitter.
BUILT = ("large-two", "mixed-eight")
IMAGES = 3  # a split


def _installed(name: str) -> None:
    try:
        check_sources([name])
    except SourceMissing as exc:
        pytest.skip(f"source not installed: {exc}")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("detect")
    folders = {}
    for name in BUILT:
        try:
            folders[name] = build_task(name, out / name, seed=0, images=IMAGES)
        except SourceMissing:
            continue  # the test of that task skips, naming the package
    return folders


def _task(built: dict[str, Path], name: str) -> Path:
    _installed(name)
    return built[name]


def _labels(path: Path) -> list[tuple[int, float, float, float, float]]:
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(int(c), float(x), float(y), float(w), float(h)) for c, x, y, w, h in rows]


def _rerendered_boxes(record: dict[str, Any], split: str, side: int) -> list[tuple[int, ...]]:
    """Each object's visible pixel box, re-rendered from its source and the record."""
    masks = []
    for obj in record["objects"]:
        source = dict(object_pool(obj["class"])[split])[obj["object"]]
        image = scaled_object(source, max(obj["size"]))
        assert list(image.size) == obj["size"]
        mask, (x, y) = visible_mask(image), obj["at"]
        pad = max(mask.shape)  # room for an object cut by the border
        canvas = np.zeros((side + 2 * pad, side + 2 * pad), bool)
        canvas[y + pad : y + pad + mask.shape[0], x + pad : x + pad + mask.shape[1]] = mask
        masks.append(canvas[pad : pad + side, pad : pad + side])
    boxes: list[tuple[int, ...]] = []
    for index, mask in enumerate(masks):
        for later in masks[index + 1 :]:
            mask = mask & ~later  # objects pasted later hide this one
        ys, xs = np.nonzero(mask)
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    return boxes


@pytest.mark.parametrize("name", BUILT)
def test_boxes_are_the_visible_alpha_bounds_of_the_pasted_objects(
    built: dict[str, Path], name: str
) -> None:
    folder = _task(built, name)
    task = TASKS[name]
    derivation = json.loads((folder / "derivation.json").read_text())
    checked = 0
    for split in SPLITS:
        assert len(derivation["images"][split]) == IMAGES
        for record in derivation["images"][split]:
            stem = Path(record["image"]).stem
            labels = _labels(folder / "labels" / split / f"{stem}.txt")
            assert (folder / "images" / split / record["image"]).is_file()
            expected = _rerendered_boxes(record, split, task.side)
            assert len(labels) == len(expected) == len(record["objects"]) > 0
            for (cls, cx, cy, w, h), box, obj in zip(
                labels, expected, record["objects"], strict=True
            ):
                assert task.classes[cls] == obj["class"]
                got = [(cx - w / 2), (cy - h / 2), (cx + w / 2), (cy + h / 2)]
                assert all(0.0 <= v <= 1.0 for v in got)
                assert np.allclose(np.array(got) * task.side, box, atol=1e-3), (stem, obj)
                assert obj["visible"] >= task.min_visible
                checked += 1
    assert checked >= 3 * IMAGES


@pytest.mark.parametrize("name", BUILT)
def test_mlsel_reads_a_task_as_detection_with_its_classes(
    built: dict[str, Path], name: str
) -> None:
    folder = _task(built, name)
    dataset = read_dataset(folder)
    assert dataset.task == "detect"
    assert list(dataset.classes) == list(TASKS[name].classes)
    assert sorted({item.split for item in dataset.items}) == sorted(SPLITS)
    assert len(dataset.items) == 3 * IMAGES
    boxes = sum(len(item.boxes) for item in dataset.items)
    assert boxes == sum(len(_labels(p)) for p in folder.glob("labels/*/*.txt"))
    assert not dataset.warnings


def test_a_seed_fixes_the_images_and_splits_share_no_object_or_wallpaper(
    built: dict[str, Path], tmp_path: Path
) -> None:
    folder = _task(built, "large-two")
    again = build_task("large-two", tmp_path / "again", seed=0, images=IMAGES)
    other = build_task("large-two", tmp_path / "other", seed=1, images=IMAGES)
    files = sorted(p.relative_to(folder) for p in folder.glob("*/*/*.*"))
    assert files == sorted(p.relative_to(again) for p in again.glob("*/*/*.*"))
    assert all((folder / f).read_bytes() == (again / f).read_bytes() for f in files)
    labels = [(folder / f).read_text() for f in files if f.suffix == ".txt"]
    assert labels != [(other / f).read_text() for f in files if f.suffix == ".txt"]

    derivation = json.loads((folder / "derivation.json").read_text())
    walls = {s: set(names) for s, names in derivation["wallpapers"].items()}
    objects = {s: {(c, n) for c in TASKS["large-two"].classes for n, _ in object_pool(c)[s]}
               for s in SPLITS}  # fmt: skip
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not walls[a] & walls[b] and not objects[a] & objects[b]
    for split, records in derivation["images"].items():
        assert {r["wallpaper"] for r in records} <= walls[split]


def test_the_easiest_task_has_two_classes_and_the_largest_objects() -> None:
    easiest = TASKS[EASIEST]
    assert len(easiest.classes) == 2 and easiest.scale[0] >= 0.25
    assert easiest.min_visible == 1.0 and not easiest.border_cut
    assert all(t.scale[0] < easiest.scale[0] for n, t in TASKS.items() if n != EASIEST)
    assert len(TASKS) >= 6
    assert {len(t.classes) for t in TASKS.values()} >= {2, 8}


def test_a_missing_package_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    there = (("some-package", tmp_path),)
    monkeypatch.setattr(detect_sources, "BACKGROUND_PACKAGES", there)
    monkeypatch.setattr(detect_sources, "EMOJI_PACKAGES", there)
    monkeypatch.setattr(
        detect_sources, "ICON_PACKAGES", (("mate-icon-theme", tmp_path / "no-icons"),)
    )
    check_sources(["large-two"])  # emoji only: needs no icons
    with pytest.raises(SourceMissing, match="needs the Debian package mate-icon-theme"):
        check_sources(["icons-small"])
    with pytest.raises(SourceMissing) as caught:
        build_task("mixed-eight", tmp_path / "out", seed=0, images=1)
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()


def test_the_data_cards_name_every_task_and_source_package() -> None:
    cards = Path(__file__).resolve().parents[2] / "data_cards"
    derivation = (cards / "derivations" / "detect-real.md").read_text()
    assert f"**The easiest is `{EASIEST}`**" in derivation
    for name in TASKS:
        assert f"| {name} |" in derivation or f"| **{name}** (easiest) |" in derivation
    packages = {p for t in TASKS.values() for p, _ in detect_sources.packages_for(t.classes)}
    for package in packages:
        card = (cards / "sources" / f"{package}.md").read_text()
        assert f"`{package}`" in card


def test_the_cli_builds_the_named_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _installed(EASIEST)
    detect_tasks.main(["--out", str(tmp_path), "--tasks", EASIEST, "--images", "1"])
    assert f"{EASIEST} (easiest):" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [EASIEST]
    assert len(list((tmp_path / EASIEST).glob("images/*/*.jpg"))) == 3
    with pytest.raises(SystemExit):
        detect_tasks.main(["--out", str(tmp_path), "--tasks", "no-such-task"])
