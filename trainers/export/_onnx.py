"""A trained torch classifier as ONNX, its preprocessing inside the graph."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

__all__ = ["OPSET", "export_classifier", "normalisation"]

#: The opset the project's ONNX exports use (see ``trainers/onnx_backbone.py``).
OPSET = 17


def normalisation(preprocessing: Mapping[str, Any]) -> tuple[Sequence[float], Sequence[float]]:
    """The per-channel ``(mean, std)`` the graph applies after scaling to [0, 1]."""
    return tuple(preprocessing["mean"]), tuple(preprocessing["std"])


def with_preprocessing(model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> Any:
    """``model`` behind the steps of :meth:`mlsel.trainers.Predictor.predict_proba`, in its
    order: uint8 NHWC in, ``/ 255``, ``(x - mean) / std``, NCHW, the model, softmax."""
    import torch
    from torch import nn

    class WithPreprocessing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            x = images.permute(0, 3, 1, 2).float() / 255.0
            mean, std = self.get_buffer("mean"), self.get_buffer("std")
            return self.model((x - mean) / std).softmax(dim=1)

    return WithPreprocessing().eval()


def export_classifier(
    model: nn.Module, preprocessing: Mapping[str, Any], size: int, path: Path
) -> None:
    """Write ``model`` (eval mode, on the CPU) with its preprocessing to ``path``.

    Input ``images``: uint8 ``(N, size, size, 3)``; output ``probabilities``: ``(N, C)``;
    the batch is dynamic.
    """
    import torch

    mean, std = normalisation(preprocessing)
    wrapped = with_preprocessing(model, mean, std)
    example = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (example,),
            str(path),
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_axes={"images": {0: "n"}, "probabilities": {0: "n"}},
            opset_version=OPSET,
            dynamo=False,
        )
