"""Meta-features computed from the ``Dataset`` record and the pixel statistics."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from mlsel.kernel.dataset import Dataset
from mlsel.profilers._pixels import STAT_NAMES

__all__ = ["detection_features", "header_features", "pixel_features", "size_features"]

NAN = float("nan")
SMALL_CLASS = 50  # the few-shot study: below 50 images a class, the winners change
_COCO_SMALL, _COCO_LARGE = 32 * 32, 96 * 96
_EDGE = 0.02  # a box side this close to the border (share of the side) is at the edge


def _spread(prefix: str, counts: Sequence[int]) -> dict[str, float]:
    if not counts:
        return {f"{prefix}_{k}": NAN for k in ("min", "median", "max")}
    return {
        f"{prefix}_min": float(min(counts)),
        f"{prefix}_median": float(np.median(counts)),
        f"{prefix}_max": float(max(counts)),
    }


def size_features(dataset: Dataset) -> dict[str, float]:
    """Size, balance and quality features (no image is opened)."""
    items = dataset.items
    # class sizes count what a model trains on: the training split (all images if none)
    training = [item for item in items if item.split == "train"] or list(items)
    if dataset.task == "classify":
        by_name = Counter(item.label for item in training)
        counts = [by_name.get(c, 0) for c in dataset.classes]
    else:  # images that contain the class
        by_index = Counter(c for item in training for c in {box[0] for box in item.boxes})
        counts = [by_index.get(i, 0) for i in range(len(dataset.classes))]
    counts = [n for n in counts if n > 0]
    total = sum(counts)
    k = len(counts)
    probs = np.array(counts, dtype=float) / total if total else np.array([])
    entropy = float(-(probs * np.log(probs)).sum() / math.log(k)) if k > 1 else NAN
    out = {
        "n_images": float(len(items)),
        "n_classes": float(len(dataset.classes)),
        **{f"n_{s}": float(sum(i.split == s for i in items)) for s in ("train", "val", "test")},
        **_spread("images_per_class", counts),
        "images_per_class_mean": float(np.mean(counts)) if counts else NAN,
        "imbalance_ratio": float(max(counts) / min(counts)) if counts else NAN,
        "class_entropy": entropy,
        "small_class_share": float(np.mean([n < SMALL_CLASS for n in counts])) if counts else NAN,
    }
    digests = Counter(item.digest for item in items if item.digest)
    split_sets: dict[str, set[str]] = {}
    for item in items:
        split_sets.setdefault(item.digest, set()).add(item.split)
    leaked = sum(n - 1 for d, n in digests.items() if n > 1 and len(split_sets[d]) > 1)
    files = len(items) + len(dataset.skipped)
    out["corrupt_share"] = len(dataset.skipped) / files if files else NAN
    out["duplicate_share"] = sum(n - 1 for n in digests.values()) / len(items) if items else NAN
    out["leakage_share"] = leaked / len(items) if items else NAN
    return out


def header_features(dataset: Dataset) -> dict[str, float]:
    """Resolution, aspect, formats and file sizes of every image (from headers)."""
    items = [item for item in dataset.items if item.width > 0]
    if not items:
        return {}
    widths = np.array([item.width for item in items], dtype=float)
    heights = np.array([item.height for item in items], dtype=float)
    aspect = widths / heights
    sizes = Counter((item.width, item.height) for item in items)
    formats = Counter(item.format for item in items)
    n = len(items)
    return {
        "width_median": float(np.median(widths)),
        "height_median": float(np.median(heights)),
        "width_min": float(widths.min()),
        "width_max": float(widths.max()),
        "height_min": float(heights.min()),
        "height_max": float(heights.max()),
        "megapixels_median": float(np.median(widths * heights) / 1e6),
        "aspect_mean": float(aspect.mean()),
        "aspect_std": float(aspect.std()),
        "size_variety": 1.0 - sizes.most_common(1)[0][1] / n,
        "file_kb_mean": float(np.mean([item.nbytes for item in items]) / 1024.0),
        "format_jpeg_share": (formats["JPEG"] + formats["MPO"]) / n,
        "format_png_share": formats["PNG"] / n,
        "format_other_share": 1.0 - (formats["JPEG"] + formats["MPO"] + formats["PNG"]) / n,
    }


def pixel_features(stats: np.ndarray) -> dict[str, float]:
    """Averages of the per-image pixel statistics (rows in ``STAT_NAMES`` order)."""
    if stats.size == 0:
        return {"pixel_sample": 0.0}
    col = {name: stats[:, i] for i, name in enumerate(STAT_NAMES)}
    return {
        "pixel_sample": float(len(stats)),
        "grayscale_share": float(col["grayscale"].mean()),
        "brightness_mean": float(col["brightness"].mean()),
        "brightness_std": float(col["brightness"].std()),
        "contrast_mean": float(col["contrast"].mean()),
        "saturation_mean": float(col["saturation"].mean()),
        "colourfulness_mean": float(col["colourfulness"].mean()),
        "sharpness_median": float(np.median(col["sharpness"])),
        "edge_density_mean": float(col["edge_density"].mean()),
        "pixel_entropy_mean": float(col["pixel_entropy"].mean()),
    }


def _max_iou(boxes: np.ndarray) -> np.ndarray:
    """For each box (x1, y1, x2, y2), the largest IoU with another box."""
    if len(boxes) < 2:
        return np.zeros(len(boxes))
    x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-12)
    np.fill_diagonal(iou, 0.0)
    return iou.max(axis=1)


def _corners(array: np.ndarray) -> np.ndarray:
    """Normalised ``cx, cy, w, h`` rows as ``x1, y1, x2, y2``."""
    half = array[:, 2:4] / 2
    return np.hstack([array[:, 0:2] - half, array[:, 0:2] + half])


def detection_features(dataset: Dataset) -> dict[str, float]:
    """Box counts, sizes, shapes, overlap, class co-occurrence and boxes at the edges.

    Sizes are COCO small/medium/large in pixels and, relative to the image, the side of
    the square with the box's share of the image (``sqrt(w * h)``, normalised). Class
    co-occurrence counts images that hold at least one box; a box is at an edge when
    one of its sides lies within 2 % of the image's border.
    """
    items = dataset.items
    per_image = np.array([len(item.boxes) for item in items], dtype=float)
    abs_areas: list[float] = []
    rel_areas: list[float] = []
    aspects: list[float] = []
    overlaps: list[float] = []
    edge_boxes = 0
    distinct: list[int] = []
    per_class: Counter[int] = Counter()
    for item in items:
        if not item.boxes:
            continue
        w_img, h_img = (item.width or 1), (item.height or 1)
        array = np.array([b[1:] for b in item.boxes], dtype=float)
        w, h = array[:, 2] * w_img, array[:, 3] * h_img
        abs_areas.extend(w * h)
        rel_areas.extend(array[:, 2] * array[:, 3])
        aspects.extend(w / np.maximum(h, 1e-9))
        corners = _corners(array)
        overlaps.extend(_max_iou(corners))
        # a small epsilon: a box drawn exactly 2 % from the border counts as at the edge
        near = (corners[:, :2] <= _EDGE + 1e-9) | (corners[:, 2:] >= 1 - _EDGE - 1e-9)
        edge_boxes += int(np.count_nonzero(near.any(axis=1)))
        per_class.update(b[0] for b in item.boxes)
        distinct.append(len({b[0] for b in item.boxes}))
    if not abs_areas:
        return {"boxes_per_image_mean": 0.0, "boxes_per_image_max": 0.0, "empty_image_share": 1.0}
    areas = np.array(abs_areas)
    overlap = np.array(overlaps)
    sides = np.sqrt(np.array(rel_areas))
    return {
        "boxes_per_image_mean": float(per_image.mean()),
        "boxes_per_image_max": float(per_image.max()),
        "empty_image_share": float((per_image == 0).mean()),
        "box_small_share": float((areas < _COCO_SMALL).mean()),
        "box_medium_share": float(((areas >= _COCO_SMALL) & (areas <= _COCO_LARGE)).mean()),
        "box_large_share": float((areas > _COCO_LARGE).mean()),
        "box_area_mean": float(np.mean(rel_areas)),
        "box_side_p10": float(np.quantile(sides, 0.1)),
        "box_side_median": float(np.median(sides)),
        "box_side_p90": float(np.quantile(sides, 0.9)),
        "box_aspect_mean": float(np.mean(aspects)),
        "box_aspect_std": float(np.std(aspects)),
        "box_overlap_mean": float(overlap.mean()),
        "crowded_box_share": float((overlap > 0.3).mean()),
        "edge_box_share": edge_boxes / len(abs_areas),
        "classes_per_image_mean": float(np.mean(distinct)),
        "multi_class_image_share": float(np.mean([n > 1 for n in distinct])),
        **_spread("boxes_per_class", [per_class.get(i, 0) for i in range(len(dataset.classes))]),
    }
