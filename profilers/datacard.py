"""The data card of a user's dataset: a Markdown page of layout, classes, stats, warnings."""

from __future__ import annotations

import math
from collections import Counter

from mlsel.kernel.dataset import Dataset
from mlsel.kernel.records import DatasetProfile
from mlsel.profilers.features import FEATURES, GROUPS

__all__ = ["data_card", "format_value"]

_INTEGER_UNITS = ("images", "classes", "boxes", "px")


def format_value(name: str, value: float) -> str:
    """A feature value as a user reads it: counts as integers, shares as percents."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    feature = FEATURES.get(name)
    unit = feature.unit if feature else ""
    if unit in _INTEGER_UNITS and float(value).is_integer():
        return f"{int(value):,}"
    if name.endswith(("_share", "_acc")) or name == "imagenet_confidence":
        return f"{100 * value:.1f}%"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _class_table(dataset: Dataset) -> list[str]:
    if dataset.task == "classify":
        counts = Counter((item.label, item.split) for item in dataset.items)
        header = "| class | train | val | test |"
        rows = [
            f"| {name} | {counts[(name, 'train')]} | {counts[(name, 'val')]} | "
            f"{counts[(name, 'test')]} |"
            for name in dataset.classes
        ]
    else:
        boxes = Counter(box[0] for item in dataset.items for box in item.boxes)
        header = "| class | boxes |"
        rows = [f"| {name} | {boxes[i]} |" for i, name in enumerate(dataset.classes)]
    separator = "|" + "---|" * (header.count("|") - 1)
    return [header, separator, *rows]


def data_card(dataset: Dataset, profile: DatasetProfile) -> str:
    """Markdown describing ``dataset`` and its ``profile``."""
    splits = Counter(item.split for item in dataset.items)
    lines = [
        f"# Data card: {dataset.name}",
        "",
        f"- **Path**: `{dataset.root}`",
        f"- **Task**: {dataset.task}",
        f"- **Layout**: {dataset.layout}"
        + (f" (`{dataset.data_yaml}`)" if dataset.data_yaml else ""),
        f"- **Fingerprint**: `{dataset.fingerprint}` (profiler {profile.profiler_version})",
        f"- **Images**: {len(dataset.items):,} (train {splits['train']:,}, val "
        f"{splits['val']:,}, test {splits['test']:,}; split {dataset.split_source})",
        f"- **Classes**: {dataset.num_classes}",
        "",
        "## Classes",
        "",
        *_class_table(dataset),
    ]
    for group in GROUPS:
        rows = [
            f"| {name} | {format_value(name, value)} | {FEATURES[name].description} |"
            for name, value in profile.features.items()
            if name in FEATURES
            and FEATURES[name].group == group
            and not (isinstance(value, float) and math.isnan(value))
        ]
        if rows:
            lines += [
                "",
                f"## {group.capitalize()}",
                "",
                "| feature | value | meaning |",
                "|---|---|---|",
                *rows,
            ]
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in profile.warnings] or ["None."]
    return "\n".join(lines) + "\n"
