"""A stand-in export folder for the service's tests: a tiny torch classifier exported to
ONNX with the export's signature (``images`` uint8 NHWC in, ``probabilities`` out, the
preprocessing inside the graph), its JSON files, and a minimal ``predict.py`` that keeps
the export's contract (``ImageError``, ``decode``, ``Model``)."""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

CLASSES = ["cat", "dog", "fish"]
SIZE = 32

PREDICT_PY = textwrap.dedent(
    '''
    """Minimal predict.py with the export's contract (a test stand-in)."""

    from __future__ import annotations

    import io
    import json
    from pathlib import Path

    import numpy as np
    import onnxruntime
    from PIL import Image


    class ImageError(ValueError):
        """An input is not a readable image."""


    def decode(image, size):
        try:
            if isinstance(image, Image.Image):
                opened = image
            elif isinstance(image, (bytes, bytearray)):
                opened = Image.open(io.BytesIO(image))
            else:
                opened = Image.open(image)
            rgb = opened.convert("RGB")
        except Exception as exc:  # ultralytics, once imported, makes Image.open raise ImportError
            raise ImageError(f"cannot decode: {exc}") from None
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


    class Model:
        def __init__(self, folder=None, providers=None):
            folder = Path(folder) if folder is not None else Path(__file__).resolve().parent
            self.metadata = json.loads((folder / "metadata.json").read_text())
            self.classes = json.loads((folder / "classes.json").read_text())
            preprocessing = json.loads((folder / "preprocessing.json").read_text())
            self.image_size = int(preprocessing["image_size"])
            self.session = onnxruntime.InferenceSession(
                str(folder / "model.onnx"), providers=providers or ["CPUExecutionProvider"]
            )

        def decode(self, image):
            return decode(image, self.image_size)

        def probabilities(self, pixels):
            return self.session.run(None, {"images": np.ascontiguousarray(pixels, np.uint8)})[0]

        def predict_proba(self, images, batch_size=32):
            out = []
            for lo in range(0, len(images), batch_size):
                batch = np.stack([self.decode(i) for i in images[lo : lo + batch_size]])
                out.append(self.probabilities(batch))
            return np.concatenate(out)

        def top(self, row, top_k=1):
            order = np.argsort(-np.asarray(row), kind="stable")[: max(1, top_k)]
            return [{"label": self.classes[i], "probability": float(row[i])} for i in order]

        def predict(self, images, top_k=1, batch_size=32):
            return [self.top(row, top_k) for row in self.predict_proba(images, batch_size)]
    '''
).lstrip()


def write_onnx(module, size: int, path: Path) -> None:  # noqa: ANN001
    """Export ``module`` (uint8 ``(N, size, size, 3)`` -> probabilities) to ``path``."""
    import torch

    example = torch.zeros(1, size, size, 3, dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            str(path),
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_axes={"images": {0: "n"}, "probabilities": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )


def tiny_classifier(n_classes: int):  # noqa: ANN201
    """A seeded conv net with the preprocessing inside: uint8 NHWC in, softmax out."""
    import torch
    from torch import nn

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(
                nn.Conv2d(3, 8, 3, stride=2),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(8, n_classes),
            )

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            x = images.permute(0, 3, 1, 2).float() / 255.0
            return self.net((x - 0.5) / 0.25).softmax(dim=1)

    return Wrapped()


def write_export(folder: Path, module=None, *, size: int = SIZE, classes=CLASSES) -> Path:  # noqa: ANN001
    """A stand-in export folder at ``folder`` (``module`` default: :func:`tiny_classifier`)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_onnx(
        module if module is not None else tiny_classifier(len(classes)), size, folder / "model.onnx"
    )
    (folder / "classes.json").write_text(json.dumps(list(classes)))
    (folder / "preprocessing.json").write_text(json.dumps({"image_size": size}))
    metadata = {
        "model_id": "standin-0001",
        "dataset": "standin",
        "config": {"arch": "tiny"},
        "metrics": {"f1_macro": 0.5},
        "image_size": size,
        "classes": list(classes),
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))
    (folder / "predict.py").write_text(PREDICT_PY)
    (folder / "requirements.txt").write_text("onnxruntime\nnumpy\nPillow\n")
    return folder
