"""``export_model``: a run folder becomes a self-contained, parity-checked ONNX folder."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import ExportError
from mlsel.trainers.export import _files
from mlsel.trainers.export._parity import Parity

if TYPE_CHECKING:
    from mlsel.experiment_store.store import Store
    from mlsel.kernel.records import DatasetProfile, RunRecord

__all__ = ["ExportReport", "export_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_model` wrote, how the export compares, and how long it took."""

    folder: Path
    parity: Parity
    seconds: float
    model_id: str
    files: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "model_id": self.model_id,
            "parity": self.parity.to_dict(),
            "seconds": round(self.seconds, 2),
            "files": list(self.files),
            "notes": list(self.notes),
        }


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        if not force:
            raise ExportError(
                f"{out} exists and is a file. Choose another folder, or pass --force to replace it."
            )
    elif out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(
            f"{out} exists and is not empty. Choose another folder, or pass --force to replace it."
        )


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` to ``out``, replacing what is there."""
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.replaced-{uuid.uuid4().hex[:8]}")
        os.replace(out, old)
        os.replace(tmp, out)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        os.replace(tmp, out)


def _as_made_folder(path: Path) -> None:
    """Give a ``mkdtemp`` folder (0700) the permissions ``mkdir`` would (0777 - umask)."""
    mask = os.umask(0)
    os.umask(mask)
    path.chmod(0o777 & ~mask)


def _profile(
    record: RunRecord | None, store: Store | None, run_dir: Path
) -> tuple[DatasetProfile | None, Store | None]:
    """The dataset's latest profile from ``store`` (else the store of the run's home)."""
    if record is None:
        return None, store
    if store is None:
        from mlsel.experiment_store.store import Store
        from mlsel.kernel.home import Home

        home = Home(run_dir.resolve().parent.parent)
        if not home.store.is_file():
            return None, None
        store = Store.open(home.root)
    return store.get_profile(record.dataset), store


def _metadata(
    run_dir: Path,
    classes: Sequence[str],
    size: int,
    record: RunRecord | None,
    profile: DatasetProfile | None,
    dataset_name: str | None,
) -> dict[str, Any]:
    metrics_file = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    fingerprint = record.dataset if record is not None else None
    return {
        "model_id": record.run_id if record is not None else run_dir.name,
        "run_id": record.run_id if record is not None else run_dir.name,
        "dataset": {
            "fingerprint": fingerprint,
            "name": dataset_name or (profile.name if profile is not None else None),
        },
        "config": config,
        "metrics": metrics_file.get("metrics", {}),
        # a search's kept probe, refitted on train + val: the metrics are the fit's on train
        "final_fit": metrics_file.get("final_fit"),
        "input": _files.input_format(size),
        "image_size": size,
        "classes": list(classes),
        "mlsel_version": _files.mlsel_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "trained": None
        if record is None
        else {
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "wall_seconds": record.result.wall_seconds,
        },
    }


def export_model(
    run_dir: Path,
    out: Path,
    *,
    force: bool = False,
    service: bool = False,
    parity_images: Sequence[Path] | None = None,
    run_record: RunRecord | None = None,
    store: Store | None = None,
    dataset_name: str | None = None,
) -> ExportReport:
    """Export the trained model in ``run_dir`` to the folder ``out``.

    ``out`` gets ``model.onnx`` (uint8 NHWC images in, probabilities out, the
    preprocessing inside the graph), ``predict.py`` (onnxruntime, numpy and Pillow only,
    with the training's decoder), the JSON files, ``requirements.txt``, ``README.md`` and
    ``MODEL_CARD.md``. It is written to a temporary sibling and renamed at the end, after
    the parity check: a failed export leaves nothing.

    Args:
        run_dir: ``$MLSEL_HOME/runs/<run_id>/`` of a finished run.
        out: the export folder; an existing non-empty one is refused unless ``force``.
        force: replace what is at ``out``.
        service: also write the REST service (:func:`mlsel.trainers.service.write_service`).
        parity_images: the images to compare on (the run's validation images); ``None``:
            a few synthetic images, and the report says so.
        run_record: the run's record (for the metadata and the model card).
        store: where the dataset's profile is read (default: the store of the run's home).
        dataset_name: the dataset's name for the metadata (default: the profile's).

    Raises:
        ExportError: ``out`` is taken, the run has no model, or the parity check failed
            (with its figures).
    """
    started = time.perf_counter()
    run_dir, out = Path(run_dir), Path(out).absolute()
    _check_out(out, force)
    if not (run_dir / "model.pt").is_file():
        if not (run_dir / "weights" / "best.pt").is_file():
            raise ExportError(
                f"{run_dir} holds no trained model (model.pt or weights/best.pt). Check the "
                "run with `mlsel runs`; failed, pruned-before-first-epoch and imported runs "
                "keep none."
            )
        from mlsel.trainers.export._ultralytics import ultralytics_task

        if ultralytics_task(run_dir) != "classify":
            raise ExportError(
                f"{run_dir} is an Ultralytics detection run; exporting detectors is not "
                "available yet. Export weights/best.pt with Ultralytics' own exporter "
                "(`yolo export model=weights/best.pt format=onnx`), or export a classifier."
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        _as_made_folder(tmp)
        report = _write(
            run_dir, tmp, out, service, parity_images, run_record, store, dataset_name, started
        )
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _torchvision_onnx(
    run_dir: Path, path: Path
) -> tuple[Callable[[list[Any]], Any], list[str], dict[str, Any]]:
    """A torchvision run's graph at ``path``: its predictor, classes, preprocessing.json."""
    from mlsel.trainers.export._onnx import export_classifier
    from mlsel.trainers.predictor import Predictor

    predictor = Predictor(run_dir)
    prep = predictor.preprocessing_
    size = int(prep["image_size"])
    export_classifier(predictor.model_, prep, size, path)
    preprocessing = {
        "image_size": size,
        "resize": prep.get("resize", "bilinear, square"),
        "mode": prep.get("mode", "RGB"),
        "scale": prep.get("scale", 1 / 255),
        "mean": list(prep["mean"]),
        "std": list(prep["std"]),
        "decoder": "predict.decode (mlsel.kernel._decode, verbatim): transparency "
        "on white, 16-bit scaled by its maximum, JPEG draft, large images reduced, "
        "bilinear square resize",
        "input": _files.input_format(size),
    }
    return predictor.predict_proba, list(predictor.classes_), preprocessing


def _write(
    run_dir: Path,
    tmp: Path,
    out: Path,
    service: bool,
    parity_images: Sequence[Path] | None,
    record: RunRecord | None,
    store: Store | None,
    dataset_name: str | None,
    started: float,
) -> ExportReport:
    from mlsel.trainers.export._parity import (
        compare,
        load_predict_module,
        parity_sample,
        synthetic_images,
    )

    notes = []
    if parity_images:
        images, source, synthetic = parity_sample(parity_images), "validation images", False
        if len(images) < len(parity_images):
            source = f"of {len(parity_images)} validation images"
    else:
        images = synthetic_images(tmp / ".parity")
        source, synthetic = "synthetic images (no validation images to hand)", True
        notes.append(
            "parity was checked on synthetic images: the run's validation images "
            "were not given or not readable"
        )
    if (run_dir / "model.pt").is_file():
        reference, classes, preprocessing = _torchvision_onnx(run_dir, tmp / "model.onnx")
    else:
        from mlsel.trainers.export._ultralytics import prepare_classifier

        reference, classes, preprocessing = prepare_classifier(run_dir, tmp / "model.onnx", images)
    size = int(preprocessing["image_size"])
    profile, store = _profile(record, store, run_dir)
    metadata = _metadata(run_dir, classes, size, record, profile, dataset_name)
    _files.write_json(tmp / "classes.json", classes)
    _files.write_json(tmp / "preprocessing.json", preprocessing)
    _files.write_json(tmp / "metadata.json", metadata)
    (tmp / "predict.py").write_text(_files.predict_source(), encoding="utf-8")
    _files.write_requirements(tmp)

    try:
        exported = load_predict_module(tmp).Model(tmp)
        parity = compare(
            reference,
            exported.predict_proba,
            images,
            source=source,
            synthetic=synthetic,
        )
    finally:
        shutil.rmtree(tmp / ".parity", ignore_errors=True)
    if not parity.passed:
        raise ExportError(
            f"The export of {metadata['model_id']} predicts differently from the trained "
            f"model on {parity.describe()}; nothing was written to {out}. Report this with "
            "the run id."
        )
    metadata["parity"] = parity.to_dict()
    _files.write_json(tmp / "metadata.json", metadata)
    _files.write_readme(tmp, metadata, metadata["parity"], preprocessing.get("transform"))
    confusion = json.loads((run_dir / "metrics.json").read_text()).get("confusion")
    _files.write_model_card(
        tmp,
        metadata,
        record=record,
        profile=profile,
        confusion=confusion,
        parity=metadata["parity"],
        export_seconds=time.perf_counter() - started,
    )
    if service:
        from mlsel.trainers.service import write_service  # type: ignore[attr-defined,unused-ignore]

        write_service(tmp)
    files = tuple(sorted(p.name for p in tmp.iterdir()))
    return ExportReport(
        folder=out,
        parity=parity,
        seconds=time.perf_counter() - started,
        model_id=str(metadata["model_id"]),
        files=files,
        notes=tuple(notes),
    )
