"""Faulty inputs: odd encodings, broken YAML, one-split classes, huge and damaged images,
and cached profiles of another read."""

from __future__ import annotations

import dataclasses
import io
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.kernel.errors import DatasetError
from mlsel.profilers import (
    bad_files_message,
    drop_items,
    profile_cached,
    read_dataset,
    verify_images,
)
from mlsel.profilers._scan import scan_file


def _manifest(root: Path, save, text: str, encoding: str) -> Path:  # noqa: ANN001
    for i in range(3):
        save(root / f"a{i}.png", 20 + i)
        save(root / f"b{i}.png", 120 + i)
    path = root / "labels.csv"
    path.write_bytes(text.encode(encoding))
    return path


_ROWS = "path,label\n" + "".join(f"a{i}.png,café\nb{i}.png,thé\n" for i in range(3))


def test_latin1_manifest_is_read_with_a_warning(tmp_path: Path, save) -> None:
    _manifest(tmp_path / "latin", save, _ROWS, "latin-1")
    data = read_dataset(tmp_path / "latin")
    assert data.classes == ("café", "thé") and len(data.items) == 6
    assert any(
        w.startswith("labels.csv is not UTF-8 (line 2); it was read as Latin-1 (cp1252)")
        for w in data.warnings
    )


def test_utf8_manifest_with_bom_needs_no_warning(tmp_path: Path, save) -> None:
    _manifest(tmp_path / "bom", save, _ROWS, "utf-8-sig")
    data = read_dataset(tmp_path / "bom" / "labels.csv")
    assert data.classes == ("café", "thé")
    assert not any("UTF-8" in w for w in data.warnings)


@pytest.mark.parametrize(
    ("body", "what"),
    [(b"a0.png,x\x00y\n", "a NUL byte at line 2"), (b"a0.png,\x81\n", "byte 0x81 at line 2")],
)
def test_a_manifest_that_is_not_text_is_one_error(
    tmp_path: Path, save, body: bytes, what: str
) -> None:
    path = _manifest(tmp_path / "bin", save, "", "ascii")
    path.write_bytes(b"path,label\n" + body)
    with pytest.raises(DatasetError) as caught:
        read_dataset(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and what in message
    assert "is not a text file" in message and "Save it as a UTF-8 CSV" in message


def _yolo_folders(root: Path, save) -> None:  # noqa: ANN001
    for split in ("train", "val"):
        for i in range(2):
            save(root / "images" / split / f"{i}.png", (40 * i, 50, 90), size=32)
            label = root / "labels" / split / f"{i}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("0 0.5 0.5 0.2 0.2\n")


def test_broken_data_yaml_is_one_error_with_its_line(tmp_path: Path, save) -> None:
    root = tmp_path / "yolo"
    _yolo_folders(root, save)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b\n  c: d\n")
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"The YOLO data file {root / 'data.yaml'} is not valid YAML: ")
    assert "at line 4, column 4 (while parsing a flow sequence opened at line 3)" in message
    assert message.endswith("or remove the file to read images/ and labels/ without it.")
    with pytest.raises(DatasetError, match="line 4"):  # the YAML named directly too
        read_dataset(root / "data.yaml")


def test_another_broken_yaml_is_passed_over(tmp_path: Path, save) -> None:
    root = tmp_path / "yolo"
    _yolo_folders(root, save)
    (root / "config.yaml").write_text("a: [\n")
    assert read_dataset(root).layout == "yolo"


def test_classes_in_one_given_split_only_are_warned_about(make_classes, tmp_path: Path) -> None:
    root = tmp_path / "split"
    make_classes({"cat": 3, "dog": 3, "fish": 3}, root=root, split="train")
    make_classes({"cat": 2, "dog": 2, "bird": 2}, root=root, split="val")
    data = read_dataset(root)
    assert data.classes == ("bird", "cat", "dog", "fish")
    assert (
        "1 class(es) have val/test images but no train image, so they cannot be learnt: "
        "bird. Add train images of them or remove them."
    ) in data.warnings
    assert (
        "1 class(es) have train images but no val image, so they cannot be scored: fish. "
        "Move some of their images to val."
    ) in data.warnings
    shutil.rmtree(root / "train" / "fish")
    shutil.rmtree(root / "val" / "bird")
    assert not any("cannot be" in w for w in read_dataset(root).warnings)


def test_an_image_over_the_pixel_cap_is_skipped_quietly(
    make_classes, save, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_classes({"a": 3, "b": 3})
    save(root / "a" / "huge.png", 7, size=50)  # 2,500 pixels
    save(root / "b" / "big.png", 9, size=40)  # 1,600: over the cap, under Pillow's refusal
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Pillow warning would fail the read
        data = read_dataset(root)
    assert data.skipped == ("a/huge.png",) and len(data.items) == 7
    reason = "too large: over Pillow's cap of 0.002 megapixels (twice PIL.Image.MAX_IMAGE_PIXELS)"
    assert any(f"a/huge.png ({reason}; downscale it)" in w for w in data.warnings)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # a raised cap is the one named
    assert scan_file(str(root / "a" / "huge.png")).error == ""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1200)
    assert "cap of 0.0024 megapixels" in scan_file(str(root / "a" / "huge.png")).error


def _jpeg(path: Path, seed: int, side: int = 256) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damaged(root: Path) -> Path:
    """Class folders of JPEGs with one truncated JPEG and one truncated PNG."""
    for label in ("cat", "dog", "owl"):
        for i in range(3):
            _jpeg(root / label / f"{i}.jpg", seed=10 * ord(label[0]) + i)
    _truncate(root / "cat" / "0.jpg")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, "PNG", compress_level=0)
    (root / "dog" / "x.png").write_bytes(buffer.getvalue()[:-600])
    return root


def test_verify_images_finds_what_the_header_pass_lets_through(tmp_path: Path) -> None:
    data = read_dataset(_damaged(tmp_path / "data"))
    assert len(data.items) == 10 and not data.skipped  # both pass the header pass
    bad = verify_images(data)
    assert [Path(p).relative_to(tmp_path / "data").as_posix() for p, _ in bad] == [
        "cat/0.jpg",
        "dog/x.png",
    ]
    assert all(r.startswith("not a readable image (image file is truncated") for _, r in bad)
    calls: list[tuple[str, int, int]] = []

    def record(stage: str, done: int, total: int) -> None:
        calls.append((stage, done, total))

    assert verify_images(drop_items(data, [p for p, _ in bad], "x"), record) == []
    assert calls[0] == ("verify", 0, 8) and calls[-1] == ("verify", 8, 8)


def test_verify_images_runs_on_worker_processes(tmp_path: Path, save) -> None:
    root = tmp_path / "many"
    for i in range(300):  # above parallel_map's in-process limit
        save(root / ("a" if i % 2 else "b") / f"{i}.png", i % 250, size=8)
    _truncate(_jpeg(root / "a" / "bad.jpg", seed=1))
    bad = verify_images(read_dataset(root))
    assert [Path(p).name for p, _ in bad] == ["bad.jpg"]


def test_drop_items_gives_the_fingerprint_of_the_files_left(tmp_path: Path) -> None:
    root = _damaged(tmp_path / "data")
    data = read_dataset(root)
    bad = verify_images(data)
    dropped = drop_items(data, [p for p, _ in bad], "cannot be decoded")
    assert len(dropped.items) == 8 and dropped.skipped == ("cat/0.jpg", "dog/x.png")
    assert dropped.warnings[-1] == (
        "2 image(s) were left out (cannot be decoded): cat/0.jpg, dog/x.png."
    )
    assert dropped.warnings[:-1] == data.warnings and dropped.classes == data.classes
    assert drop_items(data, ["no/such.png"], "x") is data
    (root / "cat" / "0.jpg").unlink()
    (root / "dog" / "x.png").unlink()
    assert dropped.fingerprint == read_dataset(root).fingerprint != data.fingerprint


@pytest.mark.parametrize("split", ["train", "given"])
def test_drop_items_fingerprint_with_split_folders(
    tmp_path: Path, make_classes, split: str
) -> None:
    root = tmp_path / "split"
    make_classes({"a": 4, "b": 4}, root=root, split="train")
    make_classes({"a": 1, "b": 1}, root=root, split="test")
    if split == "given":
        make_classes({"a": 2, "b": 2}, root=root, split="val")
    data = read_dataset(root)
    gone = [item.path for item in data.items if item.path.endswith(("a_1.png", "b_3.png"))]
    dropped = drop_items(data, gone, "cannot be decoded")
    for path in gone:
        Path(path).unlink()
    assert dropped.fingerprint == read_dataset(root).fingerprint


def test_drop_items_drops_emptied_classes_and_refuses_one_class(make_classes) -> None:
    data = read_dataset(make_classes({"a": 3, "b": 3, "c": 2}))
    c_files = [item.path for item in data.items if item.label == "c"]
    dropped = drop_items(data, c_files, "cannot be decoded")
    assert dropped.classes == ("a", "b")
    assert dropped.warnings[-1].endswith("; class(es) c have no image left.")
    b_files = [item.path for item in dropped.items if item.label == "b"]
    with pytest.raises(DatasetError, match=r"keeps 3 image\(s\) in 1 class\(es\)"):
        drop_items(dropped, b_files, "cannot be decoded")


def test_bad_files_message_is_one_line() -> None:
    bad = [(f"/data/{i}.jpg", "not a readable image (image file is truncated)") for i in range(5)]
    message = bad_files_message(bad)
    assert message == (
        "5 image file(s) cannot be decoded: /data/0.jpg (not a readable image (image file is "
        "truncated)), /data/1.jpg (not a readable image (image file is truncated)), "
        "/data/2.jpg (not a readable image (image file is truncated)) and 2 more. Remove or "
        "replace them, or pass --skip-bad-files to leave them out."
    )
    assert bad_files_message(bad[:1]).startswith("1 image file(s) cannot be decoded: /data/0.jpg (")


def test_a_cached_profile_shows_the_warnings_of_this_read(make_classes, mlsel_home: Path) -> None:
    from mlsel.experiment_store import Store

    first = make_classes({"a": 3, "b": 3})
    (first / "a" / "bad.png").write_bytes(b"nope")
    store = Store.open(mlsel_home)
    old = read_dataset(first)
    made = profile_cached(old, store, landmarkers=False)
    assert any("a/bad.png" in w for w in made.warnings)
    pixel_warning = "1 image(s) could not be decoded and were left out of the pixel statistics: "
    store.save_profile(
        dataclasses.replace(
            made, warnings=(*made.warnings, f"{pixel_warning}{first}/b/b_0.png (cannot decode).")
        )
    )
    copy = first.parent / "copy"
    shutil.copytree(first, copy)
    (copy / "a" / "bad.png").unlink()
    new = read_dataset(copy)
    assert new.fingerprint == old.fingerprint and not new.warnings
    cached = profile_cached(new, store, landmarkers=False)
    assert cached.warnings == (f"{pixel_warning}{copy}/b/b_0.png (cannot decode).",)
    assert (cached.name, cached.path) == ("copy", str(copy))


def test_profile_cli_prints_the_warnings_of_the_folder_read(make_classes, tmp_path: Path) -> None:
    runner = CliRunner()
    first = make_classes({"a": 3, "b": 3})
    (first / "a" / "bad.png").write_bytes(b"nope")
    result = runner.invoke(app, ["profile", str(first), "--no-landmarkers"])
    assert result.exit_code == 0 and "a/bad.png" in result.output
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    (copy / "a" / "bad.png").unlink()
    result = runner.invoke(app, ["profile", str(copy), "--no-landmarkers"])
    assert result.exit_code == 0, result.output
    assert "bad.png" not in result.output and "warning:" not in result.output
