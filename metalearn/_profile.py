"""Reading meta-features by meaning, and describing them in a user's words.

The profilers name their meta-features (``mlsel.profilers.FEATURES``: name ->
description); imported runs carry other names (``num_classes``). Rules and reasons ask
for a quantity by meaning ("images per class, smallest class") through the aliases here,
so one renamed feature does not silently switch a rule off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache

from mlsel.kernel.records import DatasetProfile

__all__ = ["ALIASES", "describe_feature", "profile_value"]

# meaning -> feature names that carry it, most specific first.
ALIASES: dict[str, tuple[str, ...]] = {
    "n_classes": ("n_classes", "num_classes", "classes"),
    "n_images": ("n_train", "n_images", "num_images"),
    "min_per_class": (
        "images_per_class_min",
        "min_per_class",
        "min_images_per_class",
        "class_min",
        "per_class_min",
    ),
    "median_per_class": (
        "images_per_class_median",
        "median_per_class",
        "per_class_median",
        "mean_per_class",
        "images_per_class_mean",
    ),
    "image_side": ("width_median", "median_side", "median_width", "mean_width"),
    "imagenet_confidence": ("imagenet_confidence",),
    "grayscale": ("grayscale_share", "grayscale_fraction", "grayscale"),
    "probe_accuracy": ("lm_mobilenet_probe_acc", "probe_accuracy"),
    "imbalance": ("class_imbalance", "imbalance_ratio", "imbalance"),
}

_FALLBACK_WORDS: dict[str, str] = {
    "n_classes": "number of classes",
    "num_classes": "number of classes",
    "n_images": "number of images",
    "min_per_class": "images in the smallest class",
    "median_per_class": "images per class",
}


def profile_value(
    profile: DatasetProfile | Mapping[str, float] | None, meaning: str
) -> float | None:
    """The value of the first feature carrying ``meaning``; ``None`` if absent or NaN."""
    if profile is None:
        return None
    features = profile.features if isinstance(profile, DatasetProfile) else profile
    for name in ALIASES.get(meaning, (meaning,)):
        for key in (name, f"feat_{name}"):
            value = features.get(key)
            if value is not None:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                if not math.isnan(number):
                    return number
    return None


@lru_cache(maxsize=1)
def _registry() -> dict[str, str]:
    try:
        from mlsel.profilers.features import FEATURES
    except ImportError:
        return {}
    out: dict[str, str] = {}
    for name, entry in dict(FEATURES).items():
        out[name] = str(getattr(entry, "description", entry))
    return out


def describe_feature(name: str) -> str:
    """Words for a meta-feature: the profilers' description, else a fallback, else the name."""
    name = name.removeprefix("feat_")
    return _registry().get(name) or _FALLBACK_WORDS.get(name) or name.replace("_", " ")
