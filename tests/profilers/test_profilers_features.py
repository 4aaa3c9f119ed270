"""Meta-features on images whose answer is known, landmarkers, and the store cache."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mlsel.profilers import profile as profile_module
from mlsel.profilers import read_dataset
from mlsel.profilers._landmarkers import ImageNetProbes
from mlsel.profilers.features import FEATURES, GROUPS
from mlsel.profilers.profile import PROFILER_VERSION, profile_cached, profile_dataset


def _checkerboard(size: int = 64, square: int = 4) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (((yy // square) + (xx // square)) % 2 * 255).astype(np.uint8)


def test_registry_is_complete() -> None:
    assert all(f.group in GROUPS and f.description for f in FEATURES.values())


def test_constant_images_have_no_contrast_and_checkerboards_many_edges(tmp_path, save) -> None:
    for i in range(3):
        save(tmp_path / "flat" / "const" / f"{i}.png", 128, size=32)
        save(tmp_path / "board" / "chk" / f"{i}.png", _checkerboard())
    save(tmp_path / "flat" / "other" / "x.png", 128, size=32)
    save(tmp_path / "board" / "other" / "x.png", _checkerboard())
    flat = profile_dataset(read_dataset(tmp_path / "flat"), landmarkers=False).features
    assert flat["contrast_mean"] == 0.0 and flat["edge_density_mean"] == 0.0
    assert flat["sharpness_median"] == 0.0 and flat["pixel_entropy_mean"] == 0.0
    assert flat["brightness_mean"] == pytest.approx(128 / 255)
    board = profile_dataset(read_dataset(tmp_path / "board"), landmarkers=False).features
    assert board["contrast_mean"] == pytest.approx(0.5)
    assert board["edge_density_mean"] > 0.4  # a quarter of rows and columns are edges
    assert board["pixel_entropy_mean"] == pytest.approx(1.0)


def test_grayscale_share_sizes_and_formats(tmp_path, save) -> None:
    save(tmp_path / "d" / "grey" / "a.png", 40, size=20)
    save(tmp_path / "d" / "grey" / "b.jpg", (90, 90, 90), size=20)  # RGB without colour
    save(tmp_path / "d" / "red" / "c.png", (250, 10, 10), size=40)
    save(tmp_path / "d" / "red" / "d.png", (200, 30, 30), size=40)
    features = profile_dataset(read_dataset(tmp_path / "d"), landmarkers=False).features
    assert features["grayscale_share"] == 0.5
    assert features["format_jpeg_share"] == 0.25 and features["format_png_share"] == 0.75
    assert (features["width_min"], features["width_max"]) == (20.0, 40.0)
    assert features["size_variety"] == 0.5 and features["saturation_mean"] > 0.4
    assert math.isnan(features["boxes_per_image_mean"]) and math.isnan(features["lm_1nn_acc"])


def test_balance_and_size_features(make_classes) -> None:
    root = make_classes({"a": 2, "b": 8}, split="train")
    make_classes({"a": 20, "b": 20}, root=root, split="val")  # class sizes count training
    data = read_dataset(root)
    features = profile_dataset(data, landmarkers=False).features
    assert features["imbalance_ratio"] == 4.0 and features["images_per_class_min"] == 2.0
    assert features["class_entropy"] == pytest.approx(0.7219, abs=1e-4)
    assert features["small_class_share"] == 1.0 and features["n_images"] == 50.0
    assert features["n_train"] == 10.0 and features["n_val"] == 40.0


def test_detection_features(tmp_path, save) -> None:
    root = tmp_path / "det"
    save(root / "images" / "a.png", 0, size=100)
    save(root / "images" / "b.png", 0, size=100)
    (root / "labels").mkdir()
    # two 50x50 boxes that overlap by half (IoU 1/3) and one 10x10 box
    (root / "labels" / "a.txt").write_text(
        "0 0.25 0.5 0.5 0.5\n0 0.5 0.5 0.5 0.5\n1 0.9 0.1 0.1 0.1\n"
    )
    features = profile_dataset(read_dataset(root), landmarkers=False).features
    assert features["boxes_per_image_mean"] == 1.5 and features["empty_image_share"] == 0.5
    assert features["box_small_share"] == pytest.approx(1 / 3)
    assert features["box_medium_share"] == pytest.approx(2 / 3)
    assert features["box_overlap_mean"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    assert features["crowded_box_share"] == pytest.approx(2 / 3)
    assert (features["boxes_per_class_min"], features["boxes_per_class_max"]) == (1.0, 2.0)


def test_truncated_jpeg_is_named_in_a_profile_warning(make_classes, save) -> None:
    root = make_classes({"a": 3, "b": 3})
    noise = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    path = save(root / "a" / "cut.jpg", noise)
    path.write_bytes(path.read_bytes()[:5000])  # header intact, most pixels missing
    data = read_dataset(root)
    assert len(data.items) == 7  # the header pass cannot tell
    profile = profile_dataset(data, landmarkers=False)
    assert any("could not be decoded" in w and "cut.jpg" in w for w in profile.warnings)
    assert profile.features["corrupt_share"] == pytest.approx(1 / 7)


def test_pixel_landmarkers_and_missing_weights(tmp_path, save, monkeypatch) -> None:
    rng = np.random.default_rng(1)
    for i in range(12):
        dark = rng.integers(0, 60, (16, 16), dtype=np.uint8)
        save(tmp_path / "lm" / "dark" / f"{i}.png", dark)
        save(tmp_path / "lm" / "light" / f"{i}.png", (255 - dark).astype(np.uint8))
    monkeypatch.setattr(ImageNetProbes, "_load", lambda self: setattr(self, "error_", "gone"))
    profile = profile_dataset(read_dataset(tmp_path / "lm"))
    features = profile.features
    assert features["lm_1nn_acc"] == 1.0 and features["lm_lda_acc"] == 1.0
    assert features["lm_majority_acc"] == pytest.approx(0.5, abs=0.05)
    assert features["lm_images"] == 24.0 and math.isnan(features["imagenet_confidence"])
    assert any("ImageNet landmarkers skipped" in w and "gone" in w for w in profile.warnings)


@pytest.mark.slow
def test_imagenet_landmarkers_run_offline(tmp_path, save) -> None:
    rng = np.random.default_rng(2)
    for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        for i in range(6):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (32, 32, 3)), 0, 255)
            save(tmp_path / "rgb" / label / f"{i}.png", pixels.astype(np.uint8))
    features = profile_dataset(read_dataset(tmp_path / "rgb")).features
    assert features["lm_deep_images"] == 12.0
    assert features["lm_mobilenet_probe_acc"] == 1.0
    assert 0.0 < features["imagenet_confidence"] <= 1.0
    assert 0.0 <= features["imagenet_entropy"] <= 1.0


def test_profile_cached_uses_the_store(make_classes, mlsel_home: Path, monkeypatch) -> None:
    from mlsel.experiment_store import Store

    data = read_dataset(make_classes({"a": 3, "b": 3}))
    store = Store.open(mlsel_home)
    first = profile_cached(data, store, landmarkers=False)
    assert store.get_profile(data.fingerprint, PROFILER_VERSION) is not None

    def boom(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("profile_dataset must not run again")

    monkeypatch.setattr(profile_module, "profile_dataset", boom)
    again = profile_cached(data, store, landmarkers=False)
    assert again.fingerprint == first.fingerprint
    assert again.features["n_images"] == 6.0
