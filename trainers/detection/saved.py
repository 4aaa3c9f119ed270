"""What a detection run leaves in its folder, and how it is read back.

::

    model.pt            format, arch, classes count, image size, anchor plan, state dict
    anchors.json        the anchor plan and the training boxes' statistics
    classes.json        class names, in label-index order
    preprocessing.json  image size, square bilinear resize, mean/std, box coordinates
    config.json, metrics.json, curve.png   as every run (mlsel.trainers.artifacts)

A mismatch of format is an error that says to retrain, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import TrainingError

if TYPE_CHECKING:
    from mlsel.kernel.records import Config, EpochRecord
    from mlsel.trainers.detection.models import Detector

__all__ = ["MODEL_FORMAT", "is_detector_run", "load_detector", "save_detector"]

MODEL_FORMAT = "mlsel-torch-detector/1"


def save_detector(
    folder: Path,
    detector: Detector,
    state: dict[str, Any],
    *,
    config: Config,
    classes: Sequence[str],
    metrics: dict[str, float],
    curve: Sequence[EpochRecord],
) -> None:
    """Write the model (``state``: the best epoch's) and the run files to ``folder``."""
    import torch

    from mlsel.trainers.artifacts import write_atomically, write_json, write_run_files

    folder.mkdir(parents=True, exist_ok=True)
    saved = {
        "format": MODEL_FORMAT,
        "backend": "torchvision",
        "arch": detector.arch,
        "num_classes": detector.num_classes,
        "image_size": detector.image_size,
        "frozen_bn": config.pretrained is not None,
        "anchors": detector.plan.to_dict(),
        "state_dict": state,
    }
    write_atomically(folder / "model.pt", lambda tmp: torch.save(saved, tmp))
    write_json(folder / "anchors.json", detector.plan.to_dict())
    model: Any = detector.model
    write_run_files(
        folder,
        config=config,
        classes=classes,
        preprocessing={
            "image_size": detector.image_size,
            "resize": "bilinear, square",
            "mode": "RGB",
            "scale": 1 / 255,
            "mean": list(model.transform.image_mean),
            "std": list(model.transform.image_std),
            "boxes": "x1, y1, x2, y2 in pixels of the original image",
        },
        metrics=metrics,
        confusion=None,
        curve=curve,
        score_name="mAP50-95",
    )


def load_detector(folder: Path) -> tuple[Detector, tuple[str, ...]]:
    """The detector saved in ``folder`` (eval mode, on the CPU) and its class names.

    Raises:
        TrainingError: no model there, or one of another format.
    """
    import torch

    from mlsel.trainers.detection.anchors import AnchorPlan
    from mlsel.trainers.detection.models import build_detector

    path = folder / "model.pt"
    if not path.is_file():
        raise TrainingError(
            f"{folder} holds no model.pt. Check the run id with `mlsel runs`; failed runs "
            "and runs pruned before their first epoch keep no weights."
        )
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != MODEL_FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise TrainingError(
            f"{path} has format {found!r}; the detection predictor reads {MODEL_FORMAT!r}. "
            "Load a classifier with mlsel.trainers.load_model, or retrain the run."
        )
    detector = build_detector(
        saved["arch"],
        int(saved["num_classes"]),
        image_size=int(saved["image_size"]),
        plan=AnchorPlan.from_dict(saved["anchors"]),
        pretrained=False,
        frozen_bn=bool(saved["frozen_bn"]),
    )
    detector.model.load_state_dict(saved["state_dict"])
    detector.model.eval()
    classes = tuple(json.loads((folder / "classes.json").read_text(encoding="utf-8")))
    return detector, classes


def is_detector_run(folder: Path) -> bool:
    """Whether the run in ``folder`` trained a detector (its ``config.json`` names one)."""
    from mlsel.kernel.catalogue import architecture

    try:
        arch = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("arch")
    except (OSError, ValueError, AttributeError):
        return False
    found = architecture(str(arch)) if arch else None
    return found is not None and found.task == "detect" and found.backend == "torchvision"
