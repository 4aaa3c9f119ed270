"""YOLO label checks (one-line errors naming file and line) and detection meta-features."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.kernel.errors import DatasetError
from mlsel.profilers import read_dataset
from mlsel.profilers.features import FEATURES
from mlsel.profilers.profile import profile_dataset


def _yolo(root: Path, save, labels: dict[str, str], names: int = 2) -> Path:  # noqa: ANN001
    """A YOLO folder: one 100 px image per label file, ``names`` classes in data.yaml."""
    for stem, text in labels.items():
        save(root / "images" / "train" / f"{stem}.png", 50, size=100)
        label = root / "labels" / "train" / f"{stem}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(text)
    if names:
        listed = "".join(f"  {i}: c{i}\n" for i in range(names))
        (root / "data.yaml").write_text(f"train: images/train\nnames:\n{listed}")
    return root


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("2 0.5 0.5 0.1 0.1", "class 2 is not a class index (0..1, 2 names)"),
        ("-1 0.5 0.5 0.1 0.1", "class -1 is not a class index"),
        ("1.5 0.5 0.5 0.1 0.1", "class '1.5' is not a whole number"),
        ("0 0.95 0.5 0.2 0.2", "box x 0.85..1.05, y 0.4..0.6 reaches outside the image"),
        ("0 1.5 0.5 0.1 0.1", "reaches outside the image"),
        ("0 0.5 0.5 0 0.1", "width 0 and height 0.1 must both be positive"),
        ("0 0.5 0.5 0.1 -0.2", "must both be positive"),
        ("0 0.5 0.5 0.1", "4 fields, expected 5 (class cx cy w h) or a polygon"),
        ("0 0.5 0.5 0.1 0.1 0.9", "6 fields, expected 5"),
        ("cat 0.5 0.5 0.1 0.1", "'cat' is not a number"),
        ("0 nan 0.5 0.1 0.1", "'nan' is not a finite number"),
        ("0 0.1 0.1 0.5 0.1 1.2 0.4", "polygon x 0.1..1.2, y 0.1..0.4 reaches outside"),
    ],
)
def test_a_bad_label_line_is_a_one_line_error(
    tmp_path: Path, save, line: str, problem: str
) -> None:
    labels = {"ok": "0 0.5 0.5 0.2 0.2\n", "x": f"0 0.5 0.5 0.2 0.2\n{line}\n"}
    root = _yolo(tmp_path / "yolo", save, labels)
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    message = str(caught.value)
    path = root / "labels" / "train" / "x.txt"
    assert message.startswith(f"Bad YOLO label in {path}, line 2: ") and problem in message
    assert "\n" not in message and "more" not in message


def test_every_bad_line_is_counted_in_the_one_error(tmp_path: Path, save) -> None:
    labels = {"a": "0 0.5 0.5 0.2 0.2\n\n9 0.5 0.5 0.1 0.1\n", "b": "bad\n0 2 2 1 1\n"}
    with pytest.raises(
        DatasetError, match=r"a\.txt, line 3: class 9 .*\(and 2 more: 3 bad lines in 2 file\(s\)\)"
    ):
        read_dataset(_yolo(tmp_path / "yolo", save, labels))


def test_a_box_past_the_edge_by_float_rounding_is_clipped_silently(tmp_path: Path, save) -> None:
    # x2 = 1.0000001 and y1 = -0.0005: inside the slack of a thousandth of the side
    labels = {"a": "0 0.95 0.5 0.1000002 0.2\n1 0.5 0.0995 0.2 0.2\n"}
    data = read_dataset(_yolo(tmp_path / "yolo", save, labels))
    (first, second) = data.items[0].boxes
    assert first == (0, 0.95, 0.5, 0.1, 0.2)
    assert second[0] == 1 and second[2] - second[4] / 2 == pytest.approx(0.0)
    assert second[4] == pytest.approx(0.1995)
    assert not any("outside" in w for w in data.warnings)


def test_without_names_only_negative_classes_are_errors(tmp_path: Path, save) -> None:
    data = read_dataset(_yolo(tmp_path / "ok", save, {"a": "4 0.5 0.5 0.2 0.2\n"}, names=0))
    assert data.classes == ("0", "1", "2", "3", "4")
    with pytest.raises(DatasetError, match=r"line 1: class -2 is not a class index \(0 or more\)"):
        read_dataset(_yolo(tmp_path / "bad", save, {"a": "-2 0.5 0.5 0.2 0.2\n"}, names=0))


def test_the_cli_prints_the_label_error_as_one_line(tmp_path: Path, save) -> None:
    root = _yolo(tmp_path / "yolo", save, {"a": "0 0.5 0.5 0.2 0.2\n", "b": "5 0.5 0.5 0.1 0.1\n"})
    result = CliRunner().invoke(app, ["profile", str(root), "--no-landmarkers"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert re.search(
        r"b\.txt, line 1: class 5 is not a class index", " ".join(result.output.split())
    )


def test_detection_meta_features_on_known_boxes(tmp_path: Path, save) -> None:
    labels = {
        # a: a centred 0.2 box (class 0), two 0.1 boxes of class 1, the second touching x = 1
        "a": "0 0.5 0.5 0.2 0.2\n1 0.1 0.5 0.1 0.1\n1 0.95 0.5 0.1 0.1\n",
        # b: one 0.8 box inside, one 0.4 box 1 % from the left border; both class 2
        "b": "2 0.5 0.5 0.8 0.8\n2 0.21 0.79 0.4 0.4\n",
        # c: a 0.1 box exactly 2 % from the left border (counts as at the edge)
        "c": "0 0.07 0.5 0.1 0.1\n",
        "d": "",  # no box
    }
    root = _yolo(tmp_path / "yolo", save, labels, names=3)
    features = profile_dataset(read_dataset(root), landmarkers=False).features
    new = (
        "box_side_p10",
        "box_side_median",
        "box_side_p90",
        "edge_box_share",
        "classes_per_image_mean",
        "multi_class_image_share",
    )
    assert all(name in FEATURES and FEATURES[name].group == "detection" for name in new)
    assert features["boxes_per_image_mean"] == 1.5 and features["empty_image_share"] == 0.25
    # relative sides 0.1, 0.1, 0.1, 0.2, 0.4, 0.8 (numpy's linear quantiles)
    assert features["box_side_p10"] == pytest.approx(0.1)
    assert features["box_side_median"] == pytest.approx(0.15)
    assert features["box_side_p90"] == pytest.approx(0.6)
    assert features["edge_box_share"] == pytest.approx(3 / 6)
    # images with boxes: a holds 2 classes, b and c one each; d is left out
    assert features["classes_per_image_mean"] == pytest.approx(4 / 3)
    assert features["multi_class_image_share"] == pytest.approx(1 / 3)
