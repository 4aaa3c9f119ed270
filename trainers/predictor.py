"""Load a trained run back for prediction: ``load_model(run_id)``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import TrainingError, WeightsUnavailableError
from mlsel.kernel.home import Home

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Predictor", "load_model"]


class Predictor:
    """A saved classifier: ``predict(images) -> class names``, ``predict_proba``.

    Images are file paths, encoded bytes, PIL images or ``(H, W, 3)`` uint8 arrays; each
    goes through :func:`mlsel.kernel.images.decode`, which decodes and resizes exactly as
    in training.
    """

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        import torch

        from mlsel.trainers.torch_backend import MODEL_FORMAT

        self.folder = folder
        self.classes_ = tuple(json.loads((folder / "classes.json").read_text()))
        self.preprocessing_ = json.loads((folder / "preprocessing.json").read_text())
        saved = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        if saved.get("format") != MODEL_FORMAT:
            raise TrainingError(
                f"{folder / 'model.pt'} has format {saved.get('format')!r}; this mlsel reads "
                f"{MODEL_FORMAT!r}. Retrain the run with this version."
            )
        self.model_ = (
            _frozen_model(saved, folder) if "frozen_backbones" in saved else _trained_model(saved)
        )
        self.model_.eval().to(device)
        self.device = torch.device(device)

    def _batch(self, images: Sequence[Any]):  # noqa: ANN202
        import numpy as np
        import torch

        from mlsel.kernel.images import decode

        size = int(self.preprocessing_["image_size"])
        arrays = [decode(image, size) for image in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)

    def predict_proba(self, images: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape ``(N, n_classes)``, columns in ``classes_`` order."""
        import numpy as np
        import torch

        from mlsel.trainers.augment import normalise

        out = []
        with torch.no_grad():
            for lo in range(0, len(images), batch_size):
                x = self._batch(images[lo : lo + batch_size]).to(self.device).float() / 255.0
                prep = self.preprocessing_
                x = normalise(x, tuple(prep["mean"]), tuple(prep["std"]))
                out.append(self.model_(x).softmax(dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def predict(self, images: Sequence[Any]) -> list[str]:
        """The most probable class name of each image."""
        return [self.classes_[i] for i in self.predict_proba(images).argmax(axis=1)]


def _trained_model(saved: dict[str, Any]) -> Any:
    """A model whose whole state was saved (finetune ``partial`` or ``full``)."""
    from mlsel.trainers.zoo import build_torchvision

    if saved["backend"] != "torchvision":
        from mlsel.kernel.records import Config
        from mlsel.trainers.torch_backend import TimmBackend

        cfg = Config(backend="timm", arch=saved["arch"], pretrained=None)
        net = TimmBackend().build(cfg, saved["num_classes"], pretrained=None)
    else:
        net = build_torchvision(
            saved["arch"], saved["num_classes"], pretrained=None, image_size=saved["image_size"]
        )
    model = net.model()
    model.load_state_dict(saved["state_dict"])
    return model


def _frozen_model(saved: dict[str, Any], folder: Path) -> Any:
    """A linear probe or frozen-backbone head: its backbones are rebuilt from the weights
    they were trained on (found by name, checked by digest), then the saved head."""
    from mlsel.kernel.records import Config
    from mlsel.trainers.embeddings import weights_identity
    from mlsel.trainers.frozen import EMBEDDING_TRANSFORM, build_frozen_classifier, make_head
    from mlsel.trainers.torch_backend import TorchvisionBackend
    from mlsel.trainers.zoo import build_torchvision

    if saved.get("embedding_transform") != EMBEDDING_TRANSFORM:
        raise TrainingError(
            f"{folder / 'model.pt'} was saved by an earlier mlsel that fed raw embeddings to "
            "its head; this one normalises them. Retrain the run with this version."
        )
    parts = []
    for part in saved["frozen_backbones"]:
        # The weights installed for the arch if they are the bytes it was trained on, else
        # the file it was trained on (a --weights file) if it is still there, unchanged.
        try:
            installed = TorchvisionBackend().resolve_weights(
                Config(backend="torchvision", arch=part["arch"])
            )
        except WeightsUnavailableError:
            installed = None
        recorded, explicit = part.get("path"), None
        if installed is None or weights_identity(installed) != part["weights"]:
            if not recorded or weights_identity(recorded) != part["weights"]:
                has = weights_identity(installed) if installed else "none installed"
                raise TrainingError(
                    f"{folder / 'model.pt'} was trained on {part['arch']} weights "
                    f"{part['weights']}"
                    + (f" ({recorded})" if recorded else "")
                    + f", but this machine has {has}. Install the weights it was trained "
                    "with, or retrain the run here."
                )
            explicit = recorded
        net = build_torchvision(
            part["arch"],
            2,
            pretrained="imagenet",
            image_size=saved["image_size"],
            weights=explicit,
        )
        parts.append((net.backbone, tuple(part["mean"]), tuple(part["std"])))
    head = make_head(saved["embedding_dim"], saved["num_classes"], saved["dropout"])
    head.load_state_dict(saved["head_state"])
    return build_frozen_classifier(parts, head)


def load_model(run_id: str, home: str | None = None, device: str = "cpu") -> Any:
    """The predictor of a finished run, from ``$MLSEL_HOME/runs/<run_id>/``.

    Returns a :class:`Predictor` (torchvision, timm classifiers), a
    :class:`~mlsel.trainers.detection.DetectionPredictor` (torchvision detectors) or an
    :class:`~mlsel.trainers.ultralytics_backend.YoloPredictor` (Ultralytics).

    Raises:
        TrainingError: the run has no saved model there.
    """
    folder = Home.resolve(home).run(run_id)
    if (folder / "model.pt").is_file():
        from mlsel.trainers.detection.saved import is_detector_run

        if is_detector_run(folder):
            from mlsel.trainers.detection import DetectionPredictor

            return DetectionPredictor(folder, device)
        return Predictor(folder, device)
    if (folder / "weights" / "best.pt").is_file():
        from mlsel.trainers.ultralytics_backend import YoloPredictor

        return YoloPredictor(folder, device)
    raise TrainingError(
        f"Run {run_id!r} has no saved model in {folder}. Check the id with `mlsel runs`; "
        "failed, pruned-before-first-epoch and imported runs keep no weights."
    )
