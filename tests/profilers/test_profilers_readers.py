"""Readers: every layout, every check, splits and the fingerprint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlsel.kernel.errors import DatasetError
from mlsel.profilers import read_dataset


def test_class_folders_seeded_stratified_split(make_classes) -> None:
    root = make_classes({"cat": 5, "dog": 10})
    data = read_dataset(root)
    assert (data.layout, data.task, data.split_source) == ("class-folders", "classify", "seeded")
    assert data.classes == ("cat", "dog")
    val = [item.label for item in data.split("val")]
    assert sorted(val) == ["cat", "dog", "dog"]
    assert len(data.items) == 15 and all(item.width in (8, 9, 10) for item in data.items)
    again = read_dataset(root)
    assert [i.split for i in again.items] == [i.split for i in data.items]
    other_seed = read_dataset(root, seed=7)
    assert other_seed.fingerprint == data.fingerprint


def test_class_folders_with_given_splits(make_classes, tmp_path: Path) -> None:
    root = tmp_path / "split"
    make_classes({"a": 4, "b": 4}, root=root, split="train")
    make_classes({"a": 2, "b": 2}, root=root, split="valid")
    make_classes({"a": 1, "b": 1}, root=root, split="test")
    data = read_dataset(root)
    assert (data.layout, data.split_source) == ("class-folders-split", "given")
    assert [len(data.split(s)) for s in ("train", "val", "test")] == [8, 4, 2]


def test_train_and_test_only_carves_val_from_train(make_classes, tmp_path: Path) -> None:
    root = tmp_path / "tt"
    make_classes({"a": 5, "b": 5}, root=root, split="train")
    make_classes({"a": 2, "b": 2}, root=root, split="test")
    data = read_dataset(root)
    assert data.split_source == "seeded"
    assert [len(data.split(s)) for s in ("train", "val", "test")] == [8, 2, 4]


def _yolo(root: Path, save_image) -> Path:  # noqa: ANN001
    for split in ("train", "val"):
        for i in range(2):
            save_image(root / "images" / split / f"{split}{i}.jpg", (10 * i, 50, 90), size=100)
    labels = root / "labels"
    (labels / "train").mkdir(parents=True)
    (labels / "val").mkdir(parents=True)
    (labels / "train" / "train0.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n")
    (labels / "train" / "train1.txt").write_text("1 0.9 0.5 0.2000004 0.2\n")
    (labels / "val" / "val0.txt").write_text("")
    (labels / "val" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "data.yaml").write_text(
        "path: /somewhere/else\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n"
    )
    return root


def test_yolo_layout_and_its_checks(tmp_path: Path, save) -> None:
    data = read_dataset(_yolo(tmp_path / "yolo", save))
    assert (data.layout, data.task, data.classes) == ("yolo", "detect", ("cat", "dog"))
    assert data.split_source == "given" and data.data_yaml.endswith("data.yaml")
    boxes = {Path(i.path).stem: i.boxes for i in data.items}
    assert boxes["train0"] == ((0, 0.5, 0.5, 0.2, 0.2), (1, 0.25, 0.25, 0.1, 0.1))
    assert boxes["train1"] == ((1, 0.9, 0.5, 0.2, 0.2),)  # rounding past the edge, clipped
    assert boxes["val0"] == () and boxes["val1"] == ()
    assert "1 label file(s) have no image: ghost.txt" in " ".join(data.warnings)


def test_yolo_without_yaml_infers_class_names(tmp_path: Path, save) -> None:
    save_image = save
    root = tmp_path / "flat"
    save_image(root / "images" / "a.png", 3)
    save_image(root / "images" / "b.png", 4)
    (root / "labels").mkdir()
    (root / "labels" / "a.txt").write_text("2 0.5 0.5 0.5 0.5\n")
    data = read_dataset(root)
    assert data.layout == "yolo" and data.classes == ("0", "1", "2")
    assert data.split_source == "seeded" and len(data.split("val")) == 1


def test_csv_manifest(tmp_path: Path, save) -> None:
    save_image = save
    for i in range(3):
        save_image(tmp_path / "img" / f"x{i}.png", i)
        save_image(tmp_path / "img" / f"y{i}.png", 100 + i)
    rows = ["path,label"] + [f"img/x{i}.png,ex" for i in range(3)]
    rows += [f"img/y{i}.png,why" for i in range(3)] + ["img/missing.png,ex", "img/x0.png,"]
    manifest = tmp_path / "labels.csv"
    manifest.write_text("\n".join(rows) + "\n")
    data = read_dataset(manifest)
    assert (data.layout, data.classes, len(data.items)) == ("csv", ("ex", "why"), 6)
    assert "2 bad row(s)" in data.warnings[0] and "missing file img/missing.png" in data.warnings[0]
    assert read_dataset(tmp_path).fingerprint == data.fingerprint  # found in its folder


def test_corrupt_and_non_image_files_are_skipped(make_classes) -> None:
    root = make_classes({"a": 3, "b": 3})
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "b" / "notes.txt").write_text("hello")
    data = read_dataset(root)
    assert len(data.items) == 6 and data.skipped == ("a/broken.jpg",)
    assert data.ignored == 1
    text = " ".join(data.warnings)
    assert "1 unreadable or corrupt image(s) were skipped: a/broken.jpg" in text
    assert "non-image file(s) were ignored (e.g. notes.txt)" in text


def test_empty_and_single_image_classes_warn(make_classes) -> None:
    root = make_classes({"a": 3, "b": 3, "solo": 1})
    (root / "empty").mkdir()
    data = read_dataset(root)
    assert data.classes == ("a", "b", "solo")
    text = " ".join(data.warnings)
    assert "hold no readable image and are left out: empty" in text
    assert "single image" in text and "solo" in text


def test_one_class_only_is_an_error(make_classes) -> None:
    root = make_classes({"only": 4})
    with pytest.raises(DatasetError, match="at least two classes.*'only'"):
        read_dataset(root)


def test_leaked_duplicate_across_splits(make_classes, tmp_path: Path) -> None:
    root = tmp_path / "leak"
    make_classes({"a": 3, "b": 3}, root=root, split="train")
    make_classes({"a": 1, "b": 1}, root=root, split="val")
    shutil.copy(root / "train" / "a" / "a_0.png", root / "val" / "a" / "copy.png")
    data = read_dataset(root)
    assert any("Leakage: 1 exact duplicate" in w and "copy.png" in w for w in data.warnings)


def test_not_a_dataset_shows_expected_layouts(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not an image dataset.*Expected one of"):
        read_dataset(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "nope")


def test_task_override(make_classes, tmp_path: Path, save) -> None:
    with pytest.raises(DatasetError, match="use --task classify"):
        read_dataset(make_classes({"a": 2, "b": 2}), task="detect")
    with pytest.raises(DatasetError, match="use --task detect"):
        read_dataset(_yolo(tmp_path / "y", save), task="classify")
    assert read_dataset(tmp_path / "y", task="detect").layout == "yolo"


def test_fingerprint_stable_under_order_and_copies(make_classes, tmp_path: Path) -> None:
    first = make_classes({"a": 4, "b": 4}, root=tmp_path / "one")
    second = tmp_path / "two"
    for path in sorted(first.rglob("*.png"), reverse=True):  # created in another order
        target = second / path.relative_to(first)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    copy = tmp_path / "deeper" / "three"
    shutil.copytree(first, copy)
    prints = {read_dataset(p).fingerprint for p in (first, second, copy)}
    assert len(prints) == 1 and len(next(iter(prints))) == 16
    (copy / "a" / "a_0.png").rename(copy / "b" / "a_0.png")  # one label changed
    assert read_dataset(copy).fingerprint not in prints
