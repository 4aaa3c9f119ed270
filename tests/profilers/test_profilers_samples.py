"""Sample datasets: real offline data and synthetic shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsel.kernel.errors import ConfigError, DatasetError
from mlsel.profilers import read_dataset, samples, write_sample


def test_digits_sample_subset(tmp_path: Path) -> None:
    out = write_sample("digits", tmp_path / "d", classes=3, per_class=4, size=16)
    data = read_dataset(out)
    assert data.classes == ("0", "1", "2") and len(data.items) == 12
    assert {(i.width, i.height) for i in data.items} == {(16, 16)}


@pytest.mark.slow
def test_mnist_sample_is_real_and_seeded(tmp_path: Path) -> None:
    first = read_dataset(write_sample("mnist", tmp_path / "a", per_class=2, seed=3))
    second = read_dataset(write_sample("mnist", tmp_path / "b", per_class=2, seed=3))
    assert len(first.items) == 20 and first.items[0].width == 28
    assert first.fingerprint == second.fingerprint


def test_fashion_mnist_sample_or_clear_error(tmp_path: Path, monkeypatch) -> None:
    if samples.FASHION_MNIST_DIR.is_dir():
        data = read_dataset(write_sample("fashion-mnist", tmp_path / "f", per_class=2))
        assert len(data.classes) == 10 and "ankle-boot" in data.classes
    monkeypatch.setattr(samples, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        write_sample("fashion-mnist", tmp_path / "g")


def test_shapes_detect_boxes_are_exact(tmp_path: Path) -> None:
    out = write_sample("shapes-detect", tmp_path / "s", classes=2, per_class=6, size=64)
    data = read_dataset(out)
    assert (data.layout, data.classes, data.split_source) == ("yolo", ("circle", "square"), "given")
    assert len(data.items) == 6 and not data.warnings
    squares = [b for i in data.items for b in i.boxes if b[0] == 1]
    for _, _, _, w, h in squares:  # a square's box is as wide as it is tall
        assert w == pytest.approx(h) and 0 < w < 0.5


def test_shapes_classification(tmp_path: Path) -> None:
    data = read_dataset(write_sample("shapes", tmp_path / "s", classes=3, per_class=3, size=24))
    assert data.classes == ("circle", "square", "triangle") and len(data.items) == 9


def test_sample_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Unknown sample 'cifar'"):
        write_sample("cifar", tmp_path / "x")
    with pytest.raises(ConfigError, match="'per_class' parameter"):
        write_sample("digits", tmp_path / "x", per_class=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f.txt").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        write_sample("digits", tmp_path / "full")
