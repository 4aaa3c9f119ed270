"""Hard examples: export the images a model is unsure of, import them once labelled.

``mlsel feedback export NAME DIR`` writes a labelling folder::

    DIR/unsure/<hash12>-<file>    every image to label (a copy)
    DIR/<class>/                  one empty folder per class of the model
    DIR/manifest.csv              what was exported, why, and from where
    DIR/README.txt                what to do with it

The user moves each file into its class folder; ``mlsel feedback import NAME DIR`` then
merges the labelled files into a new dataset version of model ``NAME``
(``$MLSEL_HOME/datasets/NAME/vN/``, see :mod:`._feedback_import`); files left in
``unsure/`` are not imported. The export's strategies are in :mod:`._feedback_export`.

What both sides share lives here: the model a command is about (:class:`FeedbackModel`),
the data its next version is built on (:func:`base_dataset`), the images already labelled
(:func:`labelled_hashes`) and the export folder's manifest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from mlsel.experiment_store import DatasetVersion, ModelVersion, Store
    from mlsel.kernel.dataset import Dataset
    from mlsel.kernel.records import Config

__all__ = [
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "STRATEGIES",
    "UNSURE",
    "Base",
    "ExportReport",
    "FeedbackModel",
    "ImportReport",
    "base_dataset",
    "export_feedback",
    "file_hash",
    "import_feedback",
    "labelled_hashes",
    "read_export_manifest",
    "resolve_feedback_model",
    "trained_on",
]

logger = logging.getLogger(__name__)

STRATEGIES = (
    "least-confident",
    "margin",
    "entropy",
    "cluster-margin",
    "random",
    "label-issues",
)
MANIFEST = "manifest.csv"
UNSURE = "unsure"
README = "README.txt"
# The export folder's manifest; ``given_label``/``suggested_label`` are set by label-issues.
MANIFEST_COLUMNS = (
    "file",
    "image_hash",
    "source",
    "original",
    "predicted_label",
    "confidence",
    "score",
    "strategy",
    "model",
    "batch",
    "exported_at",
    "given_label",
    "suggested_label",
)


@dataclass(frozen=True)
class FeedbackModel:
    """The registered model a feedback command is about.

    Attributes:
        name: the registry name (the dataset versions belong to it).
        version: the version used (``NAME@alias``; the champion by default).
        classes: its class names, in label-index order.
        config: the config its run was trained with.
    """

    name: str
    version: ModelVersion
    classes: tuple[str, ...]
    config: Config

    @property
    def ref(self) -> str:
        return self.version.ref


@dataclass(frozen=True)
class Base:
    """The data a new version is built on: the latest version of the model's datasets,
    or (before the first import) the dataset its version was trained on.

    ``origins`` maps each item's path to its origin (``original`` or ``feedback:<batch>``).
    """

    dataset: Dataset
    version: DatasetVersion | None
    origins: Mapping[str, str]
    how: str

    @property
    def ref(self) -> str:
        return self.version.ref if self.version is not None else self.dataset.name


@dataclass(frozen=True)
class ExportReport:
    """What ``export_feedback`` wrote."""

    folder: str
    model: str
    strategy: str
    batch: str
    exported: int
    candidates: int
    rows: tuple[Mapping[str, str], ...]
    excluded: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "model": self.model,
            "strategy": self.strategy,
            "batch": self.batch,
            "exported": self.exported,
            "candidates": self.candidates,
            "excluded": dict(self.excluded),
            "notes": list(self.notes),
            "rows": [dict(r) for r in self.rows],
        }


@dataclass(frozen=True)
class ImportReport:
    """What ``import_feedback`` did; ``version`` is None when there was nothing new."""

    name: str
    version: int | None
    path: str | None
    fingerprint: str | None
    batch: str
    new: Mapping[str, int]
    held_out: int
    relabelled: int
    total: Mapping[str, int]
    base: str
    notes: tuple[str, ...] = ()

    @property
    def imported(self) -> bool:
        return self.version is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "imported": self.imported,
            "version": self.version,
            "ref": f"{self.name}/v{self.version}" if self.version is not None else None,
            "path": self.path,
            "fingerprint": self.fingerprint,
            "batch": self.batch,
            "new": dict(self.new),
            "held_out": self.held_out,
            "relabelled": self.relabelled,
            "total": dict(self.total),
            "base": self.base,
            "notes": list(self.notes),
        }


def file_hash(path: str | os.PathLike[str]) -> str:
    """The content hash the prediction log and the dataset reader use (BLAKE2b, 16 bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_feedback_model(store: Store, spec: str) -> FeedbackModel:
    """``NAME`` (its champion) or ``NAME@alias`` / ``NAME@vN``.

    Raises:
        ConfigError: no such registered model or alias.
    """
    from mlsel.experiment_store import CHAMPION

    name, _, which = spec.partition("@")
    version = store.registry.get(name, which or CHAMPION)
    record = store.get_run(version.run_id)
    return FeedbackModel(name, version, _classes(store, version, record), record.config)


def _classes(store: Store, version: ModelVersion, record: Any) -> tuple[str, ...]:
    """The classes of the run (``classes.json``), else those of its dataset."""
    from mlsel.kernel.home import Home

    folders = [Path(record.result.artifact_dir)] if record.result.artifact_dir else []
    folders.append(Home.of_store(store.path).run(version.run_id))
    for folder in folders:
        try:
            names = json.loads((folder / "classes.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(names, list) and names:
            return tuple(str(n) for n in names)
    logger.info("run %s keeps no classes.json: its dataset's classes are used", version.run_id)
    return trained_on(store, version).classes


def trained_on(store: Store, version: ModelVersion) -> Dataset:
    """The dataset ``version`` was trained on, read from where the store keeps it.

    Raises:
        DatasetError: the store keeps no readable path, or the files changed since.
    """
    from mlsel.profilers import read_dataset

    if version.dataset_version:
        name, _, number = version.dataset_version.partition("/")
        found = store.registry.dataset_version(name, number)
        if found is not None:
            return _checked(read_dataset(found.path), found.fingerprint, found.path)
    frame = store.datasets_frame()
    paths = [
        str(path)
        for fingerprint, path in zip(frame["fingerprint"], frame["path"], strict=True)
        if fingerprint == version.dataset and path
    ]
    for path in paths:
        if os.path.exists(path):
            return _checked(read_dataset(path), version.dataset, path)
    raise DatasetError(
        f"The store keeps no readable path of the dataset {version.ref} was trained on "
        f"({version.dataset[:12]}): pass --base PATH (that dataset's folder)."
    )


def _checked(dataset: Dataset, fingerprint: str, path: str) -> Dataset:
    if dataset.fingerprint != fingerprint:
        raise DatasetError(
            f"{path} changed since it was recorded (fingerprint {dataset.fingerprint[:12]}, "
            f"recorded {fingerprint[:12]}): restore its files, or pass --base PATH."
        )
    return dataset


def base_dataset(store: Store, model: FeedbackModel, path: str | None = None) -> Base:
    """The data the next dataset version of ``model.name`` is built on.

    ``path`` (``--base``) overrides; else the latest version of the model's datasets;
    else the dataset the model's version was trained on (its fingerprint checked).

    Raises:
        DatasetError: that dataset cannot be read, or it changed since it was recorded.
    """
    from mlsel.profilers import read_dataset

    if path is not None:
        dataset = read_dataset(path)
        return Base(dataset, None, _origins(dataset, None), f"--base {path}")
    latest = store.registry.dataset_version(model.name, "latest")
    if latest is not None:
        dataset = _checked(read_dataset(latest.path), latest.fingerprint, latest.path)
        return Base(dataset, latest, _origins(dataset, Path(latest.path)), latest.ref)
    dataset = trained_on(store, model.version)
    return Base(dataset, None, _origins(dataset, None), f"the data {model.ref} was trained on")


def _origins(dataset: Dataset, folder: Path | None) -> dict[str, str]:
    """Each item's origin: a version's manifest says it; anything else is ``original``."""
    origins = {item.path: "original" for item in dataset.items}
    if folder is None or not (folder / MANIFEST).is_file():
        return origins
    with open(folder / MANIFEST, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            path = Path(row.get("path") or "")
            resolved = str(path if path.is_absolute() else (folder / path).resolve())
            if resolved in origins and row.get("origin"):
                origins[resolved] = row["origin"]
    return origins


def labelled_hashes(store: Store, name: str) -> set[str]:
    """The image hashes in every dataset version of ``name`` (labelled already)."""
    hashes: set[str] = set()
    for version in store.registry.dataset_versions(name):
        manifest = Path(version.path) / MANIFEST
        try:
            with open(manifest, newline="", encoding="utf-8") as handle:
                hashes.update(
                    row["image_hash"] for row in csv.DictReader(handle) if row.get("image_hash")
                )
        except (OSError, KeyError) as exc:
            logger.warning("dataset version %s has no readable manifest: %s", version.ref, exc)
    return hashes


def write_export_manifest(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """The export folder's manifest (atomically)."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row.get(k, "") for k in MANIFEST_COLUMNS} for row in rows)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        tmp.write_text(out.getvalue(), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_export_manifest(folder: Path) -> list[dict[str, str]] | None:
    """The rows of an export folder's manifest; None when ``folder`` is not an export.

    Raises:
        ConfigError: the manifest is there but cannot be read.
    """
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return None
    try:
        with open(manifest, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
                return None
            return [dict(row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(
            f"Cannot read {manifest}: {exc}. Export again into an empty folder."
        ) from None


def export_feedback(
    spec: str,
    folder: str | os.PathLike[str],
    *,
    home: str | os.PathLike[str] | None = None,
    limit: int = 100,
    strategy: str = "least-confident",
    model_version: int | None = None,
    base: str | None = None,
    seed: int = 0,
) -> ExportReport:
    """Write the ``limit`` images most worth labelling for model ``spec`` into ``folder``.

    See :func:`mlsel.metalearn._feedback_export.export_feedback`.
    """
    from mlsel.metalearn._feedback_export import export_feedback as run

    return run(
        spec,
        folder,
        home=home,
        limit=limit,
        strategy=strategy,
        model_version=model_version,
        base=base,
        seed=seed,
    )


def import_feedback(
    spec: str,
    folder: str | os.PathLike[str],
    *,
    home: str | os.PathLike[str] | None = None,
    holdout: float = 0.2,
    seed: int = 0,
    allow_new_classes: bool = False,
    base: str | None = None,
) -> ImportReport:
    """Merge the labelled files of an export folder into a new dataset version.

    See :func:`mlsel.metalearn._feedback_import.import_feedback`.
    """
    from mlsel.metalearn._feedback_import import import_feedback as run

    return run(
        spec,
        folder,
        home=home,
        holdout=holdout,
        seed=seed,
        allow_new_classes=allow_new_classes,
        base=base,
    )
