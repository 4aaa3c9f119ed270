"""The COCO evaluator: perfect and empty answers, agreement with pycocotools, edge cases."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest

from mlsel.trainers.detection.coco import coco_metrics, coco_run_metrics

CLASSES = ("cat", "dog", "owl")
SIZES = [(100, 80), (64, 64)]
GROUND_TRUTH = [
    (np.array([[10.0, 10.0, 50.0, 50.0], [60.0, 20.0, 95.0, 70.0]]), np.array([0, 1])),
    (np.array([[5.0, 5.0, 30.0, 40.0]]), np.array([0])),
]


def _none() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int)


def _as_predictions(truth: list[tuple[np.ndarray, np.ndarray]]) -> list:
    return [(boxes, np.ones(len(labels)), labels) for boxes, labels in truth]


def _pycocotools_stats(truth: list, predictions: list, sizes: list) -> np.ndarray:
    """The twelve COCOeval stats, from pycocotools used directly on xywh dicts."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images: list[dict] = []
    annotations: list[dict] = []
    results: list[dict] = []
    for image_id, ((gt, gl), (pb, ps, pl), (w, h)) in enumerate(
        zip(truth, predictions, sizes, strict=True), start=1
    ):
        images.append({"id": image_id, "width": w, "height": h})
        for (x1, y1, x2, y2), label in zip(gt, gl, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
        for (x1, y1, x2, y2), score, label in zip(pb, ps, pl, strict=True):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]
    with contextlib.redirect_stdout(io.StringIO()):
        gt_api = COCO()
        gt_api.dataset = {"images": images, "annotations": annotations, "categories": categories}
        gt_api.createIndex()
        evaluator = COCOeval(gt_api, gt_api.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_ground_truth_as_predictions_scores_one() -> None:
    metrics = coco_metrics(GROUND_TRUTH, _as_predictions(GROUND_TRUTH), CLASSES, SIZES)
    for key in ("map", "map50", "map75"):
        assert metrics[key] == pytest.approx(1.0)
    assert metrics["per_class_ap"] == pytest.approx({"cat": 1.0, "dog": 1.0})
    assert (metrics["n_images"], metrics["n_boxes"]) == (2, 3)


def test_empty_predictions_score_zero_without_raising(capsys: pytest.CaptureFixture) -> None:
    metrics = coco_metrics(GROUND_TRUTH, [_none(), _none()], CLASSES, SIZES)
    for key in ("map", "map50", "map75", "map_small", "map_medium"):
        assert metrics[key] == 0.0
    assert metrics["per_class_ap"] == {"cat": 0.0, "dog": 0.0}
    assert capsys.readouterr().out == ""  # pycocotools' printing is swallowed


def test_one_image_found_one_missed_matches_pycocotools() -> None:
    predictions = [_as_predictions(GROUND_TRUTH)[0], _none()]
    metrics = coco_metrics(GROUND_TRUTH, predictions, CLASSES, SIZES)
    stats = _pycocotools_stats(GROUND_TRUTH, predictions, SIZES)
    assert 0.0 < metrics["map"] < 1.0
    assert (metrics["map"], metrics["map50"], metrics["map75"]) == pytest.approx(tuple(stats[:3]))
    # dog is found in full; one of the two cats is missed
    assert metrics["per_class_ap"]["dog"] == pytest.approx(1.0)
    assert 0.0 < metrics["per_class_ap"]["cat"] < 1.0


def test_noisy_predictions_match_pycocotools() -> None:
    rng = np.random.default_rng(0)
    truth, predictions, sizes = [], [], []
    for _ in range(6):
        n = int(rng.integers(1, 5))
        x1y1 = rng.uniform(0, 60, (n, 2))
        boxes = np.hstack([x1y1, x1y1 + rng.uniform(4, 40, (n, 2))])
        labels = rng.integers(0, 3, n)
        truth.append((boxes, labels))
        jitter = boxes + rng.normal(0, 3, boxes.shape)
        extra = np.hstack([x1y1[:1] + 5, x1y1[:1] + 25])  # a false positive
        predictions.append(
            (
                np.vstack([jitter, extra]),
                rng.uniform(0.05, 1.0, n + 1),
                np.append(labels, rng.integers(0, 3)),
            )
        )
        sizes.append((100, 100))
    metrics = coco_metrics(truth, predictions, CLASSES, sizes)
    stats = _pycocotools_stats(truth, predictions, sizes)
    got = [metrics[k] for k in ("map", "map50", "map75", "map_small", "map_medium", "map_large")]
    want = [v if v > -1 else math.nan for v in stats[:6]]
    assert got == pytest.approx(want, nan_ok=True)


def test_boxes_outside_the_image_are_clipped() -> None:
    truth = [(np.array([[80.0, 70.0, 120.0, 90.0]]), np.array([2]))]  # past both far edges
    inside = [(np.array([[80.0, 70.0, 100.0, 80.0]]), np.ones(1), np.array([2]))]
    beyond = [
        (
            np.array([[80.0, 70.0, 130.0, 95.0], [150.0, 150.0, 200.0, 200.0]]),
            np.array([1.0, 0.9]),
            np.array([2, 2]),
        )
    ]
    assert coco_metrics(truth, inside, CLASSES, [(100, 80)])["map"] == pytest.approx(1.0)
    # the second box lies wholly outside: dropped, not a false positive
    assert coco_metrics(truth, beyond, CLASSES, [(100, 80)])["map"] == pytest.approx(1.0)


def test_classes_without_ground_truth_are_left_out() -> None:
    predictions = _as_predictions(GROUND_TRUTH)
    predictions[1] = (np.array([[1.0, 1.0, 9.0, 9.0]]), np.array([0.5]), np.array([2]))
    metrics = coco_metrics(GROUND_TRUTH, predictions, CLASSES, SIZES)
    assert set(metrics["per_class_ap"]) == {"cat", "dog"}  # no owl in the ground truth


def test_no_ground_truth_is_undefined_and_bad_input_raises() -> None:
    empty = [(np.zeros((0, 4)), np.zeros(0, dtype=int))]
    metrics = coco_metrics(empty, [_none()], CLASSES, [(10, 10)])
    assert math.isnan(metrics["map"]) and metrics["per_class_ap"] == {}
    with pytest.raises(ValueError, match="one entry an image"):
        coco_metrics(GROUND_TRUTH, [_none()], CLASSES, SIZES)
    with pytest.raises(ValueError, match="label 5 is not a class index in 0..2"):
        coco_metrics([(np.array([[0, 0, 5, 5]]), np.array([5]))], [_none()], CLASSES, [(9, 9)])


def test_run_metrics_flatten_and_leave_undefined_figures_out() -> None:
    coco = coco_metrics(GROUND_TRUTH, _as_predictions(GROUND_TRUTH), CLASSES, SIZES)
    metrics = coco_run_metrics(coco)
    assert metrics["mAP50-95"] == metrics["map"] == pytest.approx(1.0)
    assert metrics["mAP50"] == metrics["map50"] and metrics["ap/dog"] == pytest.approx(1.0)
    assert "map_large" not in metrics  # no large box: undefined, not -1 or NaN
    assert (metrics["n_images"], metrics["n_boxes"]) == (2.0, 3.0)
    empty = [(np.zeros((0, 4)), np.zeros(0, dtype=int))]
    assert "mAP50-95" not in coco_run_metrics(coco_metrics(empty, [_none()], CLASSES, [(9, 9)]))
