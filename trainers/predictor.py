"""Load a trained run back for prediction: ``load_model(run_id)``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import TrainingError
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
        from mlsel.trainers.zoo import build_torchvision

        self.folder = folder
        self.classes_ = tuple(json.loads((folder / "classes.json").read_text()))
        self.preprocessing_ = json.loads((folder / "preprocessing.json").read_text())
        saved = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        if saved.get("format") != MODEL_FORMAT:
            raise TrainingError(
                f"{folder / 'model.pt'} has format {saved.get('format')!r}; this mlsel reads "
                f"{MODEL_FORMAT!r}. Retrain the run with this version."
            )
        if saved["backend"] != "torchvision":
            from mlsel.kernel.records import Config
            from mlsel.trainers.torch_backend import TimmBackend

            cfg = Config(backend="timm", arch=saved["arch"], pretrained=None)
            net = TimmBackend().build(cfg, saved["num_classes"], pretrained=None)
        else:
            net = build_torchvision(
                saved["arch"], saved["num_classes"], pretrained=None, image_size=saved["image_size"]
            )
        self.model_ = net.model()
        self.model_.load_state_dict(saved["state_dict"])
        self.model_.eval().to(device)
        self.device = torch.device(device)
        self.net_ = net

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


def load_model(run_id: str, home: str | None = None, device: str = "cpu") -> Any:
    """The predictor of a finished run, from ``$MLSEL_HOME/runs/<run_id>/``.

    Returns a :class:`Predictor` (torchvision, timm) or an
    :class:`~mlsel.trainers.ultralytics_backend.YoloPredictor` (Ultralytics).

    Raises:
        TrainingError: the run has no saved model there.
    """
    folder = Home.resolve(home).run(run_id)
    if (folder / "model.pt").is_file():
        return Predictor(folder, device)
    if (folder / "weights" / "best.pt").is_file():
        from mlsel.trainers.ultralytics_backend import YoloPredictor

        return YoloPredictor(folder, device)
    raise TrainingError(
        f"Run {run_id!r} has no saved model in {folder}. Check the id with `mlsel runs`; "
        "failed, pruned-before-first-epoch and imported runs keep no weights."
    )
