"""``drift_report``: do new images still look like the data a model was trained on?

Three views of a seeded sample of each side (the new images, and the train split of the
run's dataset), each with a figure, a threshold and words:

1. **profile**: the profilers' per-image pixel statistics (brightness, contrast, colour,
   sharpness, ...) and the image size; the standardised mean difference of each, the
   largest first. It explains a drift; it does not decide one.
2. **embeddings**: pooled ImageNet embeddings (the champion's frozen backbone, else
   :data:`DEFAULT_EMBEDDER`) through the embedding cache; the kernel two-sample test:
   unbiased MMD² with an RBF kernel whose bandwidth is the median pairwise distance,
   and a seeded permutation p-value.
3. **classes**: the champion's predicted classes on the new images against the training
   labels; total variation distance and a chi-square test of the 2 x K table.

The verdict is drift when the MMD p-value is below ``alpha``, or when the class
distributions are more than :data:`TV_THRESHOLD` apart with a chi-square p-value below
``alpha``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import ConfigError, DatasetError, invalid_parameter
from mlsel.metalearn._drift_views import (
    FEATURE_WORDS,
    PROFILE_THRESHOLD,
    TV_THRESHOLD,
    ClassView,
    EmbeddingView,
    FeatureShift,
    ProfileView,
    class_view,
    mmd_permutation_test,
    profile_view,
)

if TYPE_CHECKING:
    import numpy as np

    from mlsel.kernel.dataset import Dataset
    from mlsel.kernel.records import Config, RunRecord
    from mlsel.metalearn.models import ResolvedModel

__all__ = [
    "DEFAULT_EMBEDDER",
    "PROFILE_THRESHOLD",
    "TV_THRESHOLD",
    "ClassView",
    "DriftReport",
    "EmbeddingView",
    "FeatureShift",
    "ProfileView",
    "drift_report",
    "embedder_for",
    "mmd_permutation_test",
    "reference_dataset",
]

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER = ("efficientnet_lite0", 96)  # shipped backbone and image size
MIN_IMAGES = 5  # fewest readable images a side

Skip = Callable[[Path, str], None]


@dataclass(frozen=True)
class DriftReport:
    """What :func:`drift_report` found; ``verdict`` says it in one line."""

    drifted: bool
    verdict: str
    run_id: str
    folder: str
    reference: str
    n_images: int  # image files in the folder
    n_new: int  # new images measured (the sample, readable ones)
    n_reference: int
    alpha: float
    seed: int
    profile: ProfileView
    embedding: EmbeddingView
    classes: ClassView
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        out = asdict(self)
        out["skipped"], out["notes"] = list(self.skipped), list(self.notes)
        out["profile"]["shifts"] = [asdict(s) for s in self.profile.shifts]
        return out


def reference_dataset(
    record: RunRecord,
    *,
    reference: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
) -> tuple[Dataset, tuple[str, ...]]:
    """The dataset run ``record`` was trained on, and notes: ``reference`` when given
    (noted when it is another dataset), else the path the store keeps (of the dataset, or
    of the dataset version made from feedback).

    Raises:
        ConfigError: the given reference does not exist, or the store's path is gone or
            holds other data now.
    """
    from mlsel.experiment_store.store import Store
    from mlsel.kernel.home import Home
    from mlsel.profilers import read_dataset

    if reference is not None:
        path = Path(reference).expanduser()
        if not path.exists():
            raise ConfigError(
                f"The reference {path} does not exist: pass the folder (or CSV manifest) "
                "of the model's training data."
            )
        data = read_dataset(path)
        notes: tuple[str, ...] = ()
        if data.fingerprint != record.dataset:
            notes = (
                f"the reference {data.root} is not the dataset run {record.run_id} was "
                f"trained on (fingerprint {data.fingerprint[:12]}, the run's "
                f"{record.dataset[:12]}); compared with it as given",
            )
        return data, notes
    store = Store.open(Home.resolve(home).root)
    frame = store.datasets_frame()
    known = [
        str(p)
        for fp, p in zip(frame["fingerprint"], frame["path"], strict=True)
        if fp == record.dataset and p
    ]
    registry = store.registry  # a run trained on a feedback version (NAME/vN)
    for name in registry.names():
        known += [
            v.path for v in registry.dataset_versions(name) if v.fingerprint == record.dataset
        ]
    where = next((p for p in known if os.path.exists(p)), None)
    if where is None:
        said = f" ({known[0]})" if known else ""
        raise ConfigError(
            f"The training data of run {record.run_id} is not where the store says{said}: "
            "it moved or was never recorded. Pass --reference PATH (its folder or manifest)."
        )
    data = read_dataset(where)
    if data.fingerprint != record.dataset:
        raise ConfigError(
            f"The training data of run {record.run_id} in {where} changed since it was "
            f"trained (fingerprint {data.fingerprint[:12]}, the run's {record.dataset[:12]}). "
            "Pass --reference PATH to compare with the data as it is."
        )
    return data, ()


def _sample_readable(
    paths: Sequence[str], want: int, rng: np.random.Generator, on_skip: Skip | None
) -> tuple[list[int], np.ndarray]:
    """Indices of up to ``want`` readable images of ``paths`` drawn in a seeded order,
    and their profile features (``FEATURE_WORDS`` order); unreadable ones go to ``on_skip``."""
    import numpy as np
    from PIL import Image

    from mlsel.profilers import STAT_NAMES, pixel_stats  # one image's statistics

    order = rng.permutation(len(paths))
    chosen: list[int] = []
    rows: list[list[float]] = []
    for index in order.tolist():
        if len(chosen) >= want:
            break
        result = pixel_stats((paths[index], False))
        if result.error:
            if on_skip is not None:
                on_skip(Path(paths[index]), f"{paths[index]}: {result.error}")
            continue
        try:
            with Image.open(paths[index]) as image:  # the header only: its size
                width, height = image.size
        except OSError as exc:
            if on_skip is not None:
                on_skip(Path(paths[index]), f"{paths[index]}: cannot read its size ({exc})")
            continue
        stats = dict(zip(STAT_NAMES, result.stats, strict=True))
        stats.update(width=float(width), height=float(height))
        rows.append([stats[name] for name in FEATURE_WORDS])
        chosen.append(index)
    return chosen, np.array(rows, dtype=np.float64).reshape(-1, len(FEATURE_WORDS))


def embedder_for(config: Config) -> tuple[str, int, tuple[str, ...]]:
    """The backbone and image size to embed a model's images with: its own when it is a
    frozen probe on a shipped backbone (so its cached embeddings serve), else
    :data:`DEFAULT_EMBEDDER` (with a note why)."""
    from mlsel.kernel.catalogue import FROZEN_MODES, SHIPPED_WEIGHTS, parts

    if config.finetune in FROZEN_MODES:
        first = parts(config.arch)[0]
        if first in SHIPPED_WEIGHTS:
            return first, int(config.image_size), ()
        arch, size = DEFAULT_EMBEDDER
        return arch, size, (f"{first} has no shipped weights; embedded with {arch} at {size} px",)
    return (*DEFAULT_EMBEDDER, ())


def _embed(arch: str, size: int, paths: Sequence[str], items: Sequence[Any]) -> np.ndarray:
    """Power-normalised embeddings (float64) of ``items`` (dataset items) and of the new
    ``paths``, stacked, from the machine's embedding cache (cached as a frozen probe's
    validation images, so a probe's own images are not embedded again)."""
    import numpy as np
    import torch

    from mlsel.kernel.dataset import DatasetItem
    from mlsel.kernel.records import Config
    from mlsel.trainers.embeddings import EmbeddingCache
    from mlsel.trainers.frozen import embed_items

    probe = Config(backend="torchvision", arch=arch, finetune="linear", image_size=size)
    new_items = [DatasetItem(path=p, label="", split="new") for p in paths]
    vectors = embed_items([*items, *new_items], probe, EmbeddingCache(), torch.device("cpu"))
    return np.asarray(vectors.numpy(), dtype=np.float64)


def _check(alpha: float, sample: int, permutations: int, seed: int) -> None:
    if not 0.0 < alpha < 1.0:
        raise invalid_parameter("alpha", "drift", "a float in (0, 1)", alpha)
    if sample < MIN_IMAGES:
        raise invalid_parameter("sample", "drift", f"an int in [{MIN_IMAGES}, inf)", sample)
    if permutations < 1:
        raise invalid_parameter("permutations", "drift", "an int in [1, inf)", permutations)
    if seed < 0:
        raise invalid_parameter("seed", "drift", "an int in [0, inf)", seed)


def _new_images(folder: Path) -> list[Path]:
    from mlsel.profilers import IMAGE_EXTENSIONS, list_images

    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DatasetError(f"The folder of new images {folder} {what}: pass a folder of images.")
    files = list_images(folder)[0]
    if not files:
        raise DatasetError(
            f"{folder} holds no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))} "
            "at any depth): pass the folder of new images."
        )
    return files


def drift_report(
    model: ResolvedModel,
    folder: str | os.PathLike[str],
    *,
    reference: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    alpha: float = 0.01,
    sample: int = 200,
    seed: int = 0,
    permutations: int = 200,
    on_skip: Skip | None = None,
) -> DriftReport:
    """Compare the images under ``folder`` with the training data of ``model``.

    Args:
        model: a trained run, from :func:`~mlsel.metalearn.models.resolve_model`.
        folder: new images, unlabelled, at any depth.
        reference: the training data's folder or manifest (default: where the store
            says the run's dataset is).
        home: the mlsel home of the store.
        alpha: significance level of the MMD and chi-square tests.
        sample: most images measured a side, drawn with ``seed``.
        seed: seed of the samples and of the permutations.
        permutations: permutations of the MMD test.
        on_skip: ``on_skip(path, reason)`` for each unreadable new image (left out).

    Raises:
        ConfigError: ``model`` is an export, a detector, or its data cannot be found.
        DatasetError: ``folder`` is missing or has fewer than 5 readable images.
    """
    import numpy as np

    from mlsel.trainers.prediction import open_predictor

    _check(alpha, sample, permutations, seed)
    record = model.record
    if record is None or model.run_dir is None:
        raise ConfigError(
            "drift compares a trained run with its training data; an export folder keeps "
            "no link to it. Name the run (`mlsel runs`) or the registered model."
        )
    files = _new_images(Path(folder).expanduser())
    data, notes = reference_dataset(record, reference=reference, home=home)
    if data.task != "classify":
        raise ConfigError(f"drift compares classifiers; {data.name} is a {data.task} dataset.")
    train = data.split("train")
    seeds = np.random.SeedSequence(seed).spawn(3)
    ref_index, ref_features = _sample_readable(
        [item.path for item in train], sample, np.random.default_rng(seeds[0]), None
    )
    skipped: list[str] = []

    def skip(path: Path, reason: str) -> None:
        skipped.append(str(path))
        if on_skip is not None:
            on_skip(path, reason)

    new_index, new_features = _sample_readable(
        [str(p) for p in files], sample, np.random.default_rng(seeds[1]), skip
    )
    for side, count in (("new images", len(new_index)), ("training images", len(ref_index))):
        if count < MIN_IMAGES:
            raise DatasetError(
                f"Only {count} readable {side} (drift needs at least {MIN_IMAGES}): add images."
            )
    new_paths = [str(files[i]) for i in new_index]
    profile = profile_view(ref_features, new_features)

    arch, size, why = embedder_for(record.config)
    notes += why
    vectors = _embed(arch, size, new_paths, [train[i] for i in ref_index])
    mmd2, mmd_p, bandwidth = mmd_permutation_test(
        vectors[: len(ref_index)],
        vectors[len(ref_index) :],
        permutations=permutations,
        seed=int(seeds[2].generate_state(1)[0]),
    )
    if 1 / (1 + permutations) >= alpha:
        notes += (f"{permutations} permutations cannot give an MMD p-value below {alpha:g}",)
    embedded = mmd_p < alpha
    sign = "<" if embedded else ">="
    embedding = EmbeddingView(
        arch,
        size,
        mmd2,
        mmd_p,
        bandwidth,
        permutations,
        alpha,
        embedded,
        f"the new images' embeddings {'differ from' if embedded else 'match'} the training "
        f"data (MMD p = {mmd_p:.3g} {sign} {alpha:g})",
    )

    predictor = open_predictor(run_dir=model.run_dir)
    rows = predictor.predict_files([Path(p) for p in new_paths], on_skip=skip)
    classes = class_view(
        [item.label for item in train], [r["label"] for r in rows], predictor.classes, alpha
    )
    drifted = embedding.drifted or classes.drifted
    said = [v.words for v in (embedding, classes) if v.drifted == drifted]
    verdict = f"{'drift' if drifted else 'no drift'}: {' and '.join(said)}; {profile.words}"
    return DriftReport(
        drifted=drifted,
        verdict=verdict,
        run_id=record.run_id,
        folder=str(Path(folder).expanduser().resolve()),
        reference=data.root,
        n_images=len(files),
        n_new=len(new_paths),
        n_reference=len(ref_index),
        alpha=alpha,
        seed=seed,
        profile=profile,
        embedding=embedding,
        classes=classes,
        skipped=tuple(dict.fromkeys(skipped)),
        notes=notes,
    )
