"""``profile_dataset``: turn a ``Dataset`` into a ``DatasetProfile`` of meta-features.

Work and caps, in order:

1. size, balance, quality, resolution and format features from the reader's header pass
   (every file is counted);
2. pixel statistics on a stratified sample of at most :data:`PIXEL_SAMPLE_CAP` images,
   decoded small on every core (see :mod:`mlsel.profilers._pixels`);
3. detection features from every box;
4. landmarkers (optional) on at most ``PIXEL_LANDMARK_CAP`` (simple learners) and
   ``DEEP_LANDMARK_CAP`` (ImageNet probes) images of that sample.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from mlsel.kernel.dataset import Dataset
from mlsel.kernel.records import DatasetProfile
from mlsel.profilers._aggregate import (
    detection_features,
    header_features,
    pixel_features,
    size_features,
)
from mlsel.profilers._checks import name_some
from mlsel.profilers._landmarkers import (
    DEEP_LANDMARK_CAP,
    PIXEL_LANDMARK_CAP,
    ImageNetProbes,
    deep_landmarkers,
    pixel_landmarkers,
)
from mlsel.profilers._parallel import Progress, parallel_map
from mlsel.profilers._pixels import (
    STAT_NAMES,
    THUMB_SIDE,
    TINY_SIDE,
    PixelResult,
    pixel_stats,
)
from mlsel.profilers.features import FEATURES

if TYPE_CHECKING:
    from mlsel.experiment_store import Store

__all__ = ["PIXEL_SAMPLE_CAP", "PROFILER_VERSION", "profile_cached", "profile_dataset"]

logger = logging.getLogger(__name__)

# 1.1: class sizes count the training split. 1.2: the landmarkers run without torch and
# scikit-learn (ONNX Runtime, numpy learners); their values equal 1.1's, but where the
# decision stump meets equally good splits and picks another one. 1.3: detection
# profiles add box-side quantiles, boxes near the edges and class co-occurrence
# (classification profiles are unchanged).
PROFILER_VERSION = "1.3"
PIXEL_SAMPLE_CAP = 500  # images decoded for pixel statistics (every file is still counted)

# Marks of the warnings profile_dataset adds itself (here and in deep_landmarkers; the
# others are the reader's): a cached profile keeps these, and takes the reader's warnings
# from the dataset just read.
_PIXEL_FAILURES = "could not be decoded and were left out of the pixel statistics"
_PROFILER_WARNINGS = (_PIXEL_FAILURES, "ImageNet landmarkers skipped:")


def _stratified(labels: list[str], pool: list[int], cap: int, seed: int) -> list[int]:
    """At most ``cap`` of ``pool``, each label in proportion, seeded; sorted."""
    if len(pool) <= cap:
        return list(pool)
    groups: dict[str, list[int]] = defaultdict(list)
    for index in pool:
        groups[labels[index]].append(index)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in sorted(groups):
        members = groups[label]
        take = max(1, round(cap * len(members) / len(pool)))
        chosen.extend(rng.permutation(members)[:take].tolist())
    if len(chosen) > cap:
        chosen = rng.permutation(chosen)[:cap].tolist()
    return sorted(chosen)


def _image_labels(dataset: Dataset) -> list[str]:
    if dataset.task == "classify":
        return [item.label for item in dataset.items]
    labels = []
    for item in dataset.items:
        if not item.boxes:
            labels.append("background")
            continue
        largest = max(item.boxes, key=lambda b: b[3] * b[4])
        index = largest[0]
        labels.append(dataset.classes[index] if index < len(dataset.classes) else str(index))
    return labels


def _run_landmarkers(
    good: list[tuple[int, PixelResult]],
    labels: list[str],
    probes: ImageNetProbes,
    seed: int,
    progress: Progress | None,
) -> tuple[dict[str, float], list[str]]:
    """The simple learners here while the ImageNet probes run in a thread (ONNX
    Runtime releases the GIL, so both cores work)."""
    if progress is not None:
        progress("landmarkers", 0, 2)
    thumbs = [(i, r.thumb) for i, r in good if r.thumb]
    array = np.array([np.frombuffer(t, np.uint8) for _, t in thumbs], dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=1) as pool:
        deep_future = pool.submit(
            deep_landmarkers,
            array.reshape(len(thumbs), THUMB_SIDE, THUMB_SIDE, 3),
            [labels[i] for i, _ in thumbs],
            seed,
            probes,
        )
        probe_ids = set(_stratified(labels, [i for i, _ in good], PIXEL_LANDMARK_CAP, seed))
        tiny = np.array([np.frombuffer(r.tiny, np.uint8) for i, r in good if i in probe_ids])
        features = pixel_landmarkers(
            tiny.reshape(len(tiny), TINY_SIDE * TINY_SIDE),
            [labels[i] for i, _ in good if i in probe_ids],
            seed,
        )
        if progress is not None:
            progress("landmarkers", 1, 2)
        deep_out, warnings = deep_future.result()
    features.update(deep_out)
    if progress is not None:
        progress("landmarkers", 2, 2)
    return features, warnings


def profile_dataset(
    dataset: Dataset,
    *,
    landmarkers: bool = True,
    progress: Progress | None = None,
    seed: int = 0,
    pixel_cap: int = PIXEL_SAMPLE_CAP,
) -> DatasetProfile:
    """Compute every meta-feature of :data:`~mlsel.profilers.features.FEATURES`.

    Args:
        dataset: a dataset from :func:`~mlsel.profilers.read_dataset`.
        landmarkers: run the learner probes (the ImageNet ones need an ONNX export of
            two offline models, made with torch the first time on a machine).
        progress: optional ``progress(stage, done, total)`` callback.
        seed: seed of the samples and of the cross-validation folds.
        pixel_cap: most images decoded for pixel statistics.

    Returns:
        The profile; features not measured are NaN; warnings are the reader's plus
        those found while decoding.
    """
    features: dict[str, float] = {name: math.nan for name in FEATURES}
    warnings = list(dataset.warnings)
    features.update(size_features(dataset))
    features.update(header_features(dataset))
    if dataset.task == "detect":
        features.update(detection_features(dataset))
    labels = _image_labels(dataset)
    everyone = list(range(len(dataset.items)))
    sample = _stratified(labels, everyone, pixel_cap, seed)
    deep = set(_stratified(labels, sample, DEEP_LANDMARK_CAP, seed)) if landmarkers else set()
    probes = ImageNetProbes(progress) if landmarkers else None
    results = parallel_map(
        pixel_stats,
        [(dataset.items[i].path, i in deep) for i in sample],
        stage="pixels",
        progress=progress,
        on_start=probes.start if probes is not None else None,
    )
    failed = [dataset.items[i].path for i, r in zip(sample, results, strict=True) if r.error]
    if failed:
        warnings.append(
            f"{len(failed)} image(s) {_PIXEL_FAILURES}: {name_some(failed)} "
            f"({next(r.error for r in results if r.error)})."
        )
        files = len(dataset.items) + len(dataset.skipped)
        features["corrupt_share"] = (len(dataset.skipped) + len(failed)) / files
    good = [(i, r) for i, r in zip(sample, results, strict=True) if not r.error]
    stats = np.array([r.stats for _, r in good], dtype=float).reshape(-1, len(STAT_NAMES))
    features.update(pixel_features(stats))
    if probes is not None and good:
        found, more = _run_landmarkers(good, labels, probes, seed, progress)
        features.update(found)
        warnings.extend(more)
    return DatasetProfile(
        fingerprint=dataset.fingerprint,
        task=dataset.task,
        features=features,
        profiler_version=PROFILER_VERSION,
        name=dataset.name,
        path=dataset.root,
        warnings=tuple(warnings),
    )


def profile_cached(
    dataset: Dataset,
    store: Store,
    *,
    landmarkers: bool = True,
    progress: Progress | None = None,
) -> DatasetProfile:
    """The stored profile of this fingerprint and profiler version, or a new one (saved).

    A stored profile made without landmarkers is recomputed when they are asked for. A
    stored profile may come from another read of the same files (a copy elsewhere, a
    corrupt file since removed): it is returned with this dataset's name, path and
    reader warnings, and only the warnings the profiling itself found.
    """
    cached = store.get_profile(dataset.fingerprint, PROFILER_VERSION)
    if cached is not None:
        ran = not math.isnan(float(cached.features.get("lm_images", math.nan)))
        if ran or not landmarkers:
            logger.debug("profile of %s found in the store", dataset.fingerprint)
            return _as_read(cached, dataset)
    profile = profile_dataset(dataset, landmarkers=landmarkers, progress=progress)
    store.save_profile(profile)
    return profile


def _as_read(cached: DatasetProfile, dataset: Dataset) -> DatasetProfile:
    """A stored profile with the name, path and reader warnings of ``dataset``."""
    own = [w for w in cached.warnings if any(marker in w for marker in _PROFILER_WARNINGS)]
    if cached.path and cached.path != dataset.root:  # files named where they are now
        own = [w.replace(cached.path + os.sep, dataset.root + os.sep) for w in own]
    return dataclasses.replace(
        cached, name=dataset.name, path=dataset.root, warnings=(*dataset.warnings, *own)
    )
