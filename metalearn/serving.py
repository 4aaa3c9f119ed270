"""The folder ``mlsel serve`` serves: an export folder as it is, or a run exported once.

A name that :func:`~mlsel.metalearn.models.resolve_model` resolves to a trained run is
exported, with its REST service, to ``$MLSEL_HOME/exports/<run_id>/`` (parity-checked on
the run's validation images when they are at hand) and reused from there next time. An
export folder without the service gets the service's files added.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsel.kernel.errors import ConfigError
from mlsel.kernel.home import Home

__all__ = ["ServedModel", "servable_folder"]


@dataclass(frozen=True)
class ServedModel:
    """The folder to serve, the model's id, and what was done to get it (in words)."""

    folder: Path
    model_id: str
    how: str
    done: tuple[str, ...] = ()
    run_id: str | None = None
    registry_name: str | None = None
    registry_version: int | None = None


def _model_id(folder: Path) -> str:
    try:
        metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return folder.name
    return str(metadata.get("model_id") or metadata.get("run_id") or folder.name)


def _has_service(folder: Path) -> bool:
    from mlsel.trainers.service import SERVICE_FILES

    return all((folder / name).is_file() for name in SERVICE_FILES)


def servable_folder(
    spec: str, *, dataset: str | None, home: str | os.PathLike[str] | None
) -> ServedModel:
    """The export folder, with its REST service, of the model ``spec`` names.

    Args:
        spec: an export folder, a run id, ``best`` (with ``dataset``) or a search name.
        dataset: the dataset ``best`` and a search name refer to.
        home: the mlsel home (default ``$MLSEL_HOME``).

    Raises:
        ConfigError: ``spec`` names no model.
        ExportError: the run cannot be exported, or its export does not match it.
    """
    from mlsel.metalearn.models import resolve_model, validation_images
    from mlsel.trainers.service import write_service

    resolved = resolve_model(spec, dataset=dataset, home=home)
    done: list[str] = []
    if resolved.exported is not None:
        folder = resolved.exported
        if not _has_service(folder):
            write_service(folder)
            done.append(f"added the REST service (app.py, Dockerfile, ...) to {folder}")
        return ServedModel(folder, _model_id(folder), resolved.how, tuple(done))
    known: dict[str, Any] = {
        "run_id": resolved.run_id,
        "registry_name": resolved.registry_name,
        "registry_version": resolved.registry_version,
    }
    if resolved.run_id is None or resolved.run_dir is None:  # resolve_model's contract
        raise ConfigError(f"{spec!r} names no trained run or export folder to serve.")
    folder = Home.resolve(home).export(resolved.run_id)
    if (folder / "model.onnx").is_file() and _has_service(folder):
        done.append(f"reused the export in {folder}")
        return ServedModel(folder, _model_id(folder), resolved.how, tuple(done), **known)
    from mlsel.trainers.export import export_model

    images = validation_images(resolved, dataset=dataset, home=home)
    report = export_model(
        resolved.run_dir,
        folder,
        force=True,  # what is there is not a whole export with its service
        service=True,
        parity_images=list(images.paths) or None,
        run_record=resolved.record,
        dataset_name=images.dataset_name,
    )
    parity = report.parity
    done.append(
        f"exported run {resolved.run_id} to {folder} in {report.seconds:.1f} s (parity on "
        f"{parity.describe()})"
    )
    done.extend(images.notes)
    return ServedModel(folder, report.model_id, resolved.how, tuple(done), **known)
