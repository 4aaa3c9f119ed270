"""``mlsel feedback export``: the images most worth labelling, into a labelling folder.

Candidates are the logged predictions of model ``NAME`` (every version's, or one
version's with ``model_version``), one per image (its latest prediction), less the images
already labelled (in a dataset version of ``NAME``) and those in the data the model was
trained on. Each is scored by its probability vector (in ``classes`` order; when a row
kept only its top-k, the mass they leave counts as one more class):

* ``least-confident``: ``1 - p_max``, largest first;
* ``margin``: ``p_1 - p_2`` (the top two), smallest first;
* ``entropy``: ``-sum p log p`` in nats, largest first;
* ``cluster-margin``: the lowest-margin images, one per cluster of their embeddings
  (see :mod:`._feedback_diverse`);
* ``random``: a seeded draw per image (the baseline the others are measured against, and
  an unbiased sample for an evaluation set), smallest first.

``label-issues`` looks at the training data instead (see :mod:`._label_issues`). Ties go
by image hash, so an export is the same whatever order the log is in.

The manifest is written before the files are copied, so an interrupted export is still an
export (exporting into it again replaces it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import ConfigError, DatasetError, invalid_parameter
from mlsel.kernel.home import Home
from mlsel.metalearn._feedback_diverse import POOL_FACTOR, diverse_hardest
from mlsel.metalearn.feedback import (
    MANIFEST,
    README,
    STRATEGIES,
    UNSURE,
    Base,
    ExportReport,
    FeedbackModel,
    base_dataset,
    file_hash,
    labelled_hashes,
    read_export_manifest,
    resolve_feedback_model,
    write_export_manifest,
)

if TYPE_CHECKING:
    import polars as pl

    from mlsel.experiment_store import Store

__all__ = [
    "class_probabilities",
    "export_feedback",
    "export_file_name",
    "rank_predictions",
    "uncertainty",
]

logger = logging.getLogger(__name__)

_README = """\
Images for {model} to label ({strategy}, batch {batch}).

1. Move each file from unsure/ into the folder of its class ({classes}).
   A file you cannot label: leave it in unsure/ (it is not imported).
2. Run:  mlsel feedback import {name} {folder}

manifest.csv says why each file was chosen. Keep it here: the import reads it.
"""


def class_probabilities(
    probabilities: Sequence[float] | None, top_k: str | None, confidence: float
) -> list[float]:
    """The probability vector of one logged prediction: the full one when kept, else its
    top-k plus what they leave as one more class, else ``(confidence, 1 - confidence)``."""
    if probabilities is not None and len(probabilities) > 0:
        return [float(p) for p in probabilities]
    values: list[float] = []
    if top_k:
        try:
            values = [float(pair[1]) for pair in json.loads(top_k)]
        except (ValueError, TypeError, IndexError, KeyError):
            logger.debug("unreadable top_k %r: the confidence is used", top_k)
    if not values:
        values = [float(confidence)]
    rest = 1.0 - sum(values)
    return values + [rest] if rest > 1e-9 else values


def uncertainty(strategy: str, probabilities: Sequence[float]) -> float:
    """The strategy's score of one probability vector (see the module's docstring)."""
    ordered = sorted(probabilities, reverse=True)
    if strategy == "least-confident":
        return 1.0 - ordered[0]
    if strategy == "margin":
        return ordered[0] - (ordered[1] if len(ordered) > 1 else 0.0)
    if strategy == "entropy":
        return -sum(p * math.log(p) for p in ordered if p > 0)
    raise invalid_parameter("strategy", "uncertainty", f"one of {STRATEGIES[:3]}", strategy)


def _draw(seed: int, image_hash: str) -> float:
    """A uniform draw in [0, 1) for one image, the same for the same seed and image."""
    digest = hashlib.blake2b(f"{seed}:{image_hash}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def rank_predictions(
    frame: pl.DataFrame, strategy: str, seed: int = 0
) -> list[tuple[dict[str, Any], float]]:
    """The rows of ``frame`` (a prediction log) with their scores, most worth labelling
    first (margin and random: smallest first; the others: largest first; ties by image
    hash)."""
    scored = []
    for row in frame.iter_rows(named=True):
        if strategy == "random":
            scored.append((row, _draw(seed, row["image_hash"])))
            continue
        vector = class_probabilities(row["probabilities"], row["top_k"], row["confidence"])
        scored.append((row, uncertainty(strategy, vector)))
    sign = 1.0 if strategy in ("margin", "random") else -1.0
    scored.sort(key=lambda pair: (sign * pair[1], pair[0]["image_hash"]))
    return scored


@dataclass(frozen=True)
class _Chosen:
    """One image to export: where its bytes are, and its manifest row."""

    source_path: str
    row: dict[str, str]


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

    Args:
        spec: ``NAME`` (its champion) or ``NAME@alias``.
        folder: a new or empty folder, or an earlier export whose labelled files were
            all imported (it is replaced).
        limit: how many images at most.
        strategy: one of :data:`~mlsel.metalearn.feedback.STRATEGIES`.
        model_version: only the predictions of this version (default: every version's).
        base: the path of the data the model was trained on, when the store keeps none
            (its images are not exported; label-issues looks at its training split).
        seed: the seed of the random strategy (and of label-issues' folds).

    Raises:
        ConfigError: a bad option, an unknown model, a folder that is not free, or
            nothing to export.
        DatasetError: the data the model was trained on cannot be read (label-issues).
    """
    from mlsel.experiment_store import Store

    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise invalid_parameter("limit", "feedback export", "an int in [1, inf)", limit)
    if strategy not in STRATEGIES:
        raise invalid_parameter(
            "strategy", "feedback export", f"one of {', '.join(STRATEGIES)}", strategy
        )
    where = Home.resolve(home)
    store = Store.open(where.root)
    _ingest_spool(store, where)
    model = resolve_feedback_model(store, spec)
    out = Path(folder).expanduser().absolute()
    _free_folder(out, store, model, base)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    batch = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    common = {
        "strategy": strategy,
        "model": model.ref,
        "batch": batch,
        "exported_at": now.isoformat(timespec="seconds"),
    }
    notes: list[str] = []
    if strategy == "label-issues":
        from mlsel.metalearn._label_issues import label_issue_rows

        found = base_dataset(store, model, base)
        chosen_rows, candidates = label_issue_rows(found, model, limit, notes)
        chosen = [_Chosen(r["original"], {**r, **common}) for r in chosen_rows]
        excluded: dict[str, int] = {}
        classes = _classes_of(model, found)
    else:
        chosen, candidates, excluded = _uncertain(
            store, model, strategy, limit, model_version, base, notes, common, seed
        )
        classes = list(model.classes)
    if not chosen:
        raise ConfigError(_nothing(model, strategy, candidates, excluded))
    _write(out, chosen, classes, model, strategy, batch)
    return ExportReport(
        folder=str(out),
        model=model.ref,
        strategy=strategy,
        batch=batch,
        exported=len(chosen),
        candidates=candidates,
        rows=tuple(c.row for c in chosen),
        excluded=excluded,
        notes=tuple(notes),
    )


def _ingest_spool(store: Store, home: Home) -> None:
    """Bring the services' spooled predictions into the store first."""
    from mlsel.metalearn.prediction_log import ingest_all

    ingested = ingest_all(store, home.root)
    if ingested:
        logger.info("%d spooled prediction(s) brought into the store", ingested)


def _classes_of(model: FeedbackModel, base: Base) -> list[str]:
    """The model's classes, then any class the base brought since (a new class imported)."""
    known = list(model.classes)
    return known + [c for c in base.dataset.classes if c not in known]


def _nothing(model: FeedbackModel, strategy: str, candidates: int, excluded: dict[str, int]) -> str:
    if strategy == "label-issues":
        return (
            f"No label issue found in the training data of {model.ref}: nothing to export. "
            "Try another strategy."
        )
    if not candidates and not sum(excluded.values()):
        return (
            f"No prediction of {model.name} is logged: run `mlsel predict {model.name} FOLDER "
            "--log` (or serve it with --log) first, then export."
        )
    return (
        f"Nothing to export for {model.name}: of {candidates + sum(excluded.values())} logged "
        f"images, {excluded.get('labelled', 0)} are labelled already, "
        f"{excluded.get('trained_on', 0)} are in its training data and "
        f"{excluded.get('gone', 0)} are no longer on disk. Log more predictions."
    )


def _predictions_of(store: Store, model: FeedbackModel, model_version: int | None) -> pl.DataFrame:
    """The model's logged predictions, by registry name or by one of its versions' runs."""
    import polars as pl

    versions = store.registry.versions(model.name)
    if model_version is not None:
        versions = [v for v in versions if v.version == model_version]
        if not versions:
            raise ConfigError(
                f"Model {model.name!r} has no version {model_version}: `mlsel models` lists them."
            )
    runs = [v.run_id for v in versions]
    frame = store.predictions_frame()
    by_name = pl.col("model") == model.name
    if model_version is not None:
        by_name = by_name & (pl.col("model_version") == model_version)
    mine = by_name | pl.col("model").is_in(runs) | pl.col("run_id").is_in(runs)
    return (
        frame.filter(mine)
        .sort(["predicted_at", "prediction_id"])
        .unique(subset="image_hash", keep="last", maintain_order=True)
    )


def _uncertain(
    store: Store,
    model: FeedbackModel,
    strategy: str,
    limit: int,
    model_version: int | None,
    base: str | None,
    notes: list[str],
    common: dict[str, str],
    seed: int = 0,
) -> tuple[list[_Chosen], int, dict[str, int]]:
    """The ``limit`` most uncertain logged images whose bytes are still at hand."""
    from mlsel.metalearn.feedback import trained_on
    from mlsel.profilers import read_dataset

    frame = _predictions_of(store, model, model_version)
    labelled = labelled_hashes(store, model.name)
    try:
        data = read_dataset(base) if base is not None else trained_on(store, model.version)
        trained = {item.digest for item in data.items}
    except DatasetError as exc:
        trained = set()
        notes.append(f"the training data of {model.ref} is not left out: {exc}")
        logger.info(notes[-1])
    n_labelled = frame.filter(frame["image_hash"].is_in(sorted(labelled))).height
    frame = frame.filter(~frame["image_hash"].is_in(sorted(labelled)))
    n_trained = frame.filter(frame["image_hash"].is_in(sorted(trained))).height
    frame = frame.filter(~frame["image_hash"].is_in(sorted(trained)))
    chosen: list[_Chosen] = []
    gone = 0
    diverse = strategy == "cluster-margin"
    wanted = limit * POOL_FACTOR if diverse else limit
    for row, score in rank_predictions(frame, "margin" if diverse else strategy, seed):
        if len(chosen) >= wanted:
            break
        found = _bytes_of(row)
        if found is None:
            gone += 1
            continue
        source, path = found
        chosen.append(
            _Chosen(
                path,
                {
                    "file": f"{UNSURE}/{export_file_name(row['image_hash'], path)}",
                    "image_hash": row["image_hash"],
                    "source": source,
                    "original": path,
                    "predicted_label": row["label"],
                    "confidence": f"{row['confidence']:.6f}",
                    "score": f"{score:.6f}",
                    **common,
                },
            )
        )
    if diverse and chosen:
        picked, note = diverse_hardest(
            [c.source_path for c in chosen],
            [float(c.row["score"]) for c in chosen],
            limit,
            model.config,
            seed,
        )
        chosen = [chosen[i] for i in picked]
        notes.append(note)
    if gone:
        notes.append(
            f"{gone} logged image(s) were skipped: their bytes are gone (no file, no kept copy)"
        )
    excluded = {"labelled": n_labelled, "trained_on": n_trained, "gone": gone}
    return chosen, frame.height - gone, excluded


def _bytes_of(row: dict[str, Any]) -> tuple[str, str] | None:
    """``("path" | "blob", file)`` holding the logged image's bytes, or None when neither
    does (a file that changed since it was predicted does not count)."""
    for source in ("path", "blob"):
        candidate = row.get(source)
        if not candidate or not os.path.isfile(candidate):
            continue
        try:
            if file_hash(candidate) == row["image_hash"]:
                return source, str(candidate)
        except OSError as exc:
            logger.debug("cannot read %s: %s", candidate, exc)
    return None


def export_file_name(image_hash: str, path: str) -> str:
    """``<hash12>-<file name>``, with an image extension (a kept copy may have none)."""
    from mlsel.profilers import IMAGE_EXTENSIONS

    name = Path(path).name
    if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
        name = f"{name}{_sniffed_extension(path)}"
    return name if name.startswith(image_hash[:12]) else f"{image_hash[:12]}-{name}"


def _sniffed_extension(path: str) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            fmt = (image.format or "png").lower()
    except (OSError, UnidentifiedImageError):
        return ".png"
    return {"jpeg": ".jpg", "tiff": ".tif"}.get(fmt, f".{fmt}")


def _free_folder(out: Path, store: Store, model: FeedbackModel, base: str | None) -> None:
    """Make sure ``out`` may be written: new, empty, or an earlier export of ``model``
    whose labelled files were all imported (its files are then removed).

    Raises:
        ConfigError: ``out`` is a file, holds something else, is another model's export,
            or holds labelled files not imported yet.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"{out} is a file: export into a new or empty folder.")
    if not any(out.iterdir()):
        return
    rows = read_export_manifest(out)
    if rows is None:
        raise ConfigError(
            f"{out} is not empty and is not an earlier feedback export: choose a new or "
            "empty folder."
        )
    names = {row["model"].partition("@")[0] for row in rows}
    if names and names != {model.name}:
        raise ConfigError(
            f"{out} is an export of model {', '.join(sorted(names))}, not {model.name}: "
            "choose another folder."
        )
    from mlsel.metalearn._feedback_import import plan_import

    plan = plan_import(out, rows, model, base_dataset(store, model, base), allow_new_classes=True)
    if plan.changes:
        raise ConfigError(
            f"{out} holds {plan.changes} labelled file(s) not imported yet: run `mlsel feedback "
            f"import {model.name} {out}` first, or export into another folder."
        )
    unsure = out / UNSURE
    if unsure.is_dir():
        shutil.rmtree(unsure)
    for path in plan.known_files:
        path.unlink(missing_ok=True)
    for name in (MANIFEST, README):
        (out / name).unlink(missing_ok=True)


def _write(
    out: Path,
    chosen: list[_Chosen],
    classes: list[str],
    model: FeedbackModel,
    strategy: str,
    batch: str,
) -> None:
    """The labelling folder: manifest first, then the copies, the class folders, the README."""
    (out / UNSURE).mkdir(parents=True, exist_ok=True)
    for name in classes:
        (out / name).mkdir(exist_ok=True)
    write_export_manifest(out / MANIFEST, [c.row for c in chosen])
    for item in chosen:
        target = out / item.row["file"]
        tmp = target.with_name(f".{target.name}.partial")
        shutil.copyfile(item.source_path, tmp)
        os.replace(tmp, target)
    text = _README.format(
        model=model.ref,
        strategy=strategy,
        batch=batch,
        classes=", ".join(f"{c}/" for c in classes),
        name=model.name,
        folder=out,
    )
    (out / README).write_text(text, encoding="utf-8")
