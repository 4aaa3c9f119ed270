"""Where a detector's pretrained weights come from, never downloaded.

In order:

1. an explicit file (``weights=`` / ``--weights FILE``, or ``Config.pretrained`` set to a
   path): a state dict of the whole detector (an mlsel detection ``model.pt`` is one);
2. a file named for the arch in ``$MLSEL_HOME/weights`` or torch's hub cache
   (``retinanet_mobilenet_v2.pth``, ``fcos_efficientnet_lite0-<hash>.pt``): the same;
3. the backbone's shipped ImageNet weights (the heads and FPN start at random).

torchvision's published detection checkpoints are for ResNet-50 and MobileNetV3
backbones, which these detectors do not use; a file of theirs fits none of them and is
refused by name (which tensors did not fit), not half loaded. Head tensors whose shapes
differ (another number of classes or anchors) are left at their initialisation and
counted in the run's notes. A file that is an mlsel detector's ``model.pt`` brings its
anchor plan: the heads it holds were trained for those anchors.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.catalogue import SHIPPED_WEIGHTS, torch_hub_dir
from mlsel.kernel.errors import WeightsUnavailableError
from mlsel.kernel.home import Home

if TYPE_CHECKING:
    from torch import nn

    from mlsel.kernel.records import Config
    from mlsel.trainers.detection.anchors import AnchorPlan

__all__ = [
    "detector_weights_file",
    "load_detector_weights",
    "resolve_detector_weights",
    "saved_anchor_plan",
]

logger = logging.getLogger(__name__)

_SUFFIXES = (".pt", ".pth")


def _named_for(folder: Path, arch: str) -> Path | None:
    if not folder.is_dir():
        return None
    found = sorted(
        p
        for p in folder.iterdir()
        if p.suffix in _SUFFIXES and p.name.startswith((f"{arch}-", f"{arch}."))
    )
    return found[0] if found else None


def detector_weights_file(
    config: Config, weights: str | None = None, home: str | None = None
) -> Path | None:
    """The whole-detector weights file for ``config``, or ``None`` (the backbone's
    ImageNet weights only, or none for a run from scratch: ``pretrained=None`` ignores
    ``weights``, as the classifiers do).

    Raises:
        WeightsUnavailableError: an explicit file that does not exist.
    """
    if config.pretrained is None:
        return None
    explicit = weights or (config.pretrained if config.pretrained != "imagenet" else None)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(
                f"The weights file {explicit!r} given for {config.arch} does not exist. Pass "
                "an existing detector state dict, or train with the shipped backbone "
                "(pretrained='imagenet' without --weights)."
            )
        return path
    for folder in (Home.resolve(home).weights, torch_hub_dir() / "checkpoints"):
        found = _named_for(folder, config.arch)
        if found is not None:
            return found
    return None


def resolve_detector_weights(config: Config, weights: str | None = None) -> str | None:
    """What ``config`` will load, checked without building the model (for ``prepare``).

    Raises:
        WeightsUnavailableError: an explicit file is missing or holds no state dict, or
            the backbone's shipped weights are not installed.
    """
    from mlsel.trainers.detection.models import split_arch
    from mlsel.trainers.weights import load_state_dict_file

    if config.pretrained is None:
        return None
    found = detector_weights_file(config, weights)
    if found is not None:
        load_state_dict_file(found)
        return f"{found} (detector)"
    _, backbone = split_arch(config.arch)
    return str(SHIPPED_WEIGHTS[backbone].path())


def saved_anchor_plan(path: Path) -> AnchorPlan | None:
    """The anchor plan saved with an mlsel detector's ``model.pt``; ``None`` for any other
    file (a bare state dict has none)."""
    import torch

    from mlsel.trainers.detection.anchors import AnchorPlan
    from mlsel.trainers.detection.saved import MODEL_FORMAT

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable here: load_detector_weights says why
        return None
    if isinstance(saved, dict) and saved.get("format") == MODEL_FORMAT and "anchors" in saved:
        return AnchorPlan.from_dict(saved["anchors"])
    return None


def load_detector_weights(model: nn.Module, path: Path, arch: str) -> dict[str, str]:
    """Load the whole-detector state dict in ``path`` into ``model``.

    Returns:
        Notes for the run: the file, and how many head tensors were left out.

    Raises:
        WeightsUnavailableError: the file holds no state dict, or most of ``model``'s
            tensors are missing from it or shaped otherwise.
    """
    from mlsel.trainers.weights import load_state_dict_file

    state: dict[str, Any] = load_state_dict_file(path)
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    body = [k for k in own if k.startswith("backbone.")]
    # a BatchNorm's batch counter is no weight (a frozen one has none)
    missing_body = [k for k in body if k not in fitting and not k.endswith("num_batches_tracked")]
    if missing_body or len(fitting) < len(own) // 2:
        raise WeightsUnavailableError(
            f"The weights in {path} do not fit {arch}: {len(own) - len(fitting)} of "
            f"{len(own)} tensors are missing or shaped otherwise (e.g. "
            f"{(missing_body or [k for k in own if k not in fitting])[:3]}). Pass a state "
            f"dict saved from an mlsel {arch} (its model.pt), or train on the shipped "
            "backbone without --weights."
        )
    model.load_state_dict(fitting, strict=False)
    left = len(own) - len(fitting)
    logger.info("loaded %d of %d detector tensors from %s", len(fitting), len(own), path)
    notes = {"detector_weights": str(path)}
    if left:
        notes["detector_weights_left_out"] = (
            f"{left} head tensors of other shapes (classes or anchors) kept at random init"
        )
    return notes
