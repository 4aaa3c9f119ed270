"""A synthetic meta-dataset whose winner depends on a meta-feature by a known rule.

Used by the tests and as a sanity check of the ranker: on datasets with fewer than
``threshold`` images in the smallest class a frozen backbone (``finetune="head"``) wins;
above it, full fine-tuning wins. Scores carry seeded noise; a few runs fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from mlsel.kernel.records import Config, DatasetProfile, RunResult

__all__ = ["synthetic_detection_runs", "synthetic_frame", "synthetic_runs"]

ARCHS = ("efficientnet_lite0", "mobilenet_v2", "resnet18", "convnext_tiny")


def synthetic_runs(
    n_datasets: int = 12, *, threshold: float = 100.0, seed: int = 0, fail_share: float = 0.05
) -> Iterator[tuple[DatasetProfile, Config, RunResult]]:
    """``(profile, config, result)`` for every config on every dataset."""
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(10, 2000, n_datasets)
    for d, per_class in enumerate(sizes):
        features = {
            "images_per_class_min": float(round(per_class)),
            "images_per_class_median": float(round(per_class * 1.2)),
            "n_classes": 10.0,
            "n_train": float(round(per_class * 10)),
            "brightness_mean": float(rng.uniform(0.3, 0.7)),
        }
        profile = DatasetProfile(
            fingerprint=f"synth{d:03d}",
            task="classify",
            features=features,
            profiler_version="synthetic",
            name=f"synthetic-{d}",
        )
        for arch in ARCHS:
            for finetune in ("head", "partial", "full"):
                for lr in (1e-4, 1e-3):
                    config = Config(backend="torchvision", arch=arch, finetune=finetune, lr=lr)
                    few = per_class < threshold
                    effect = {
                        "head": 0.3 if few else -0.1,
                        "partial": 0.1,
                        "full": -0.2 if few else 0.3,
                    }[finetune]
                    score = float(
                        np.clip(0.5 + effect + 0.02 * ARCHS.index(arch) + rng.normal(0, 0.03), 0, 1)
                    )
                    failed = rng.random() < fail_share
                    result = RunResult(
                        status="failed" if failed else "completed",
                        score=None if failed else score,
                        seconds_per_epoch=float(per_class * 0.01 * (1 + ARCHS.index(arch))),
                        wall_seconds=float(per_class * 0.1),
                        hardware={"device": "cpu"},
                        error="synthetic failure" if failed else None,
                    )
                    yield profile, config, result


DETECTORS = ("fasterrcnn_mobilenet_v2", "fcos_mobilenet_v2", "retinanet_mobilenet_v2")


def synthetic_detection_runs(
    n_datasets: int = 6,
) -> Iterator[tuple[DatasetProfile, Config, RunResult]]:
    """Detection runs whose winner depends on the box size: Faster R-CNN on datasets of
    large boxes (even-numbered), FCOS on small ones; 3 detectors x 2 learning rates each,
    the higher rate a little better. No noise: the order is the rule."""
    for d in range(n_datasets):
        large = d % 2 == 0
        profile = DatasetProfile(
            fingerprint=f"synthdet{d:03d}",
            task="detect",
            features={
                "box_side_median": 0.4 if large else 0.05,
                "n_train": 120.0,
                "n_classes": 3.0,
            },
            profiler_version="synthetic",
            name=f"synthetic-detect-{d}",
        )
        winner = "fasterrcnn" if large else "fcos"
        for arch in DETECTORS:
            for lr in (1e-3, 3e-3):
                config = Config(
                    backend="torchvision", arch=arch, finetune="head", lr=lr, image_size=320
                )
                result = RunResult(
                    status="completed",
                    score=(0.6 if arch.startswith(winner) else 0.3) + 10 * lr,
                    seconds_per_epoch=10.0,
                    wall_seconds=100.0,
                    hardware={"device": "cpu"},
                )
                yield profile, config, result


def synthetic_frame(n_datasets: int = 12, **kwargs: Any) -> Any:
    """The synthetic runs as a ``Store.training_frame()``-shaped polars frame."""
    import polars as pl

    from mlsel.metalearn.features import candidate_frame

    grouped: dict[str, tuple[DatasetProfile, list[Config], list[RunResult]]] = {}
    for profile, config, result in synthetic_runs(n_datasets, **kwargs):
        entry = grouped.setdefault(profile.fingerprint, (profile, [], []))
        entry[1].append(config)
        entry[2].append(result)
    parts = []
    for profile, configs, results in grouped.values():
        parts.append(
            candidate_frame(profile, configs).with_columns(
                pl.Series("status", [r.status for r in results]),
                pl.Series("score", [r.score for r in results], dtype=pl.Float64),
                pl.Series(
                    "seconds_per_epoch", [r.seconds_per_epoch for r in results], dtype=pl.Float64
                ),
                pl.lit("local").alias("source"),
                pl.lit("cpu").alias("device"),
            )
        )
    frame = pl.concat(parts, how="diagonal_relaxed")
    return frame.with_columns(pl.format("run{}", pl.int_range(pl.len())).alias("run_id"))
