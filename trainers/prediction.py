"""Predict image files with a trained run or an exported folder, file by file.

:func:`predict_files` is what ``mlsel predict`` runs: the files are decoded by the
model's own decoder (a run: :func:`mlsel.kernel.images.decode`, the training's; an export:
its ``predict.decode``, the same code copied), in batches; an unreadable file is reported
through ``on_skip`` with its one-line reason, and the others are still predicted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FilePredictor", "open_predictor"]


@dataclass
class FilePredictor:
    """A model that predicts image files: its classes, decoder and batch runner."""

    classes: tuple[str, ...]
    image_size: int | None
    decode: Callable[[Path], Any]  # a file -> what ``run`` takes; raises on unreadable
    run: Callable[[list[Any]], Any]  # decoded images -> (N, C) probabilities
    errors: tuple[type[BaseException], ...]

    def predict_files(
        self,
        paths: Sequence[Path],
        *,
        top_k: int = 1,
        batch_size: int = 32,
        on_skip: Callable[[Path, str], None] = lambda path, reason: None,
        on_batch: Callable[[int], None] = lambda done: None,
        probabilities: bool = False,
    ) -> list[dict[str, Any]]:
        """One row per readable file: ``path``, ``label``, ``probability``, ``top_k``
        (``{"label", "probability"}``, best first), and with ``probabilities`` the whole
        vector in ``classes`` order. ``on_batch`` gets the files done."""
        import numpy as np

        rows: list[dict[str, Any]] = []
        for lo in range(0, len(paths), batch_size):
            good, decoded = [], []
            for path in paths[lo : lo + batch_size]:
                try:
                    decoded.append(self.decode(path))
                    good.append(path)
                except self.errors as exc:
                    on_skip(path, " ".join(str(exc).split()))
            if good:
                batch = np.asarray(self.run(decoded))
                for path, row in zip(good, batch, strict=True):
                    order = np.argsort(-row, kind="stable")[: max(1, top_k)]
                    top = [{"label": self.classes[i], "probability": float(row[i])} for i in order]
                    rows.append({"path": str(path), **top[0], "top_k": top})
                    if probabilities:
                        rows[-1]["probabilities"] = [float(p) for p in row]
            on_batch(min(len(paths), lo + batch_size))
        return rows


def open_predictor(
    *, run_dir: Path | None = None, exported: Path | None = None, device: str = "cpu"
) -> FilePredictor:
    """The :class:`FilePredictor` of a run folder or of an export folder."""
    from mlsel.kernel.errors import DatasetError

    if exported is not None:
        import numpy as np

        from mlsel.trainers.export._parity import load_predict_module

        module = load_predict_module(exported)
        model = module.Model(exported)
        size = model.image_size
        return FilePredictor(
            classes=tuple(model.classes),
            image_size=size,
            # Model.decode knows the export's transform; an export made before it existed
            # decodes with predict.decode, the only decoder it had.
            decode=getattr(model, "decode", None) or (lambda path: module.decode(path, size)),
            run=lambda batch: model.probabilities(np.stack(batch)),
            errors=(module.ImageError,),
        )
    if run_dir is None:
        raise ValueError("open_predictor needs run_dir or exported")
    if (run_dir / "model.pt").is_file():
        from mlsel.kernel.images import decode
        from mlsel.trainers.predictor import Predictor

        predictor = Predictor(run_dir, device)
        size = int(predictor.preprocessing_["image_size"])
        # The decoded (size, size, 3) arrays go through decode again unchanged.
        return FilePredictor(
            classes=predictor.classes_,
            image_size=size,
            decode=lambda path: decode(path, size),
            run=lambda batch: predictor.predict_proba(batch, batch_size=len(batch)),
            errors=(DatasetError,),
        )
    from mlsel.trainers.predictor import load_model

    yolo = load_model(run_dir.name, str(run_dir.parent.parent), device)

    def readable(path: Path) -> Path:
        from mlsel.kernel.images import decode

        decode(path, 8)  # Ultralytics reads the file itself; this only checks it
        return path

    return FilePredictor(
        classes=tuple(yolo.classes_),
        image_size=None,
        decode=readable,
        run=lambda batch: yolo.predict_proba([str(p) for p in batch]),
        errors=(DatasetError,),
    )
