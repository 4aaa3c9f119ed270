"""The shipped ImageNet backbones as multi-scale feature extractors for an FPN.

Each backbone becomes one ``nn.Sequential`` of named stages (MobileNetV2's ``features``
children ``"0"``..``"18"``; EfficientNet-Lite's stem, blocks and head conv) so that
torchvision's ``BackboneWithFPN`` can take the outputs at strides 8, 16 and 32 (C3, C4,
C5). Which child ends each stride is measured with one small forward pass, not written
down per variant, so Lite0, Lite1 and Lite2 (different depths) share the code.

A pretrained backbone's BatchNorm layers become ``FrozenBatchNorm2d`` (their ImageNet
statistics; detection batches are too small to re-estimate them), as torchvision's
detection backbones do. A backbone trained from scratch keeps trainable BatchNorm.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlsel.kernel.backbones import LITE_INPUT_SIZE, NORMALISATION
from mlsel.kernel.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["BACKBONES", "FEATURE_STRIDES", "FeatureBody", "build_body", "freeze_batchnorm"]

logger = logging.getLogger(__name__)

#: The backbones a detector can stand on (their ImageNet weights ship offline).
BACKBONES: tuple[str, ...] = ("mobilenet_v2", *LITE_INPUT_SIZE)
#: The strides whose last stage feeds the FPN (C3, C4, C5).
FEATURE_STRIDES: tuple[int, ...] = (8, 16, 32)
_PROBE = 64  # side of the zero image that finds the stages


@dataclass
class FeatureBody:
    """A backbone cut for an FPN.

    Attributes:
        module: the stages, in order, as named children.
        return_layers: child name -> feature name (``"0"``, ``"1"``, ``"2"``), C3 to C5.
        in_channels: channels of each returned feature, C3 to C5.
        partial: the children ``finetune="partial"`` trains (the stride-32 stage).
        mean, std: the normalisation its weights expect (RGB in [0, 1]).
        weights: where the ImageNet weights came from, ``None`` for random init.
    """

    module: nn.Sequential
    return_layers: dict[str, str]
    in_channels: list[int]
    partial: list[str] = field(default_factory=list)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    weights: str | None = None


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` under ``module`` by a ``FrozenBatchNorm2d`` holding
    its affine parameters and running statistics (in place; returns ``module``)."""
    from torch import nn
    from torchvision.ops import FrozenBatchNorm2d

    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


def _mobilenet_v2(pretrained: bool) -> tuple[nn.Sequential, str | None]:
    from mlsel.kernel.backbones import load_mobilenet_v2_backbone, mobilenet_v2_weights_path

    features = load_mobilenet_v2_backbone(pretrained=pretrained)
    source = str(mobilenet_v2_weights_path()) if pretrained else None
    return features, source  # type: ignore[return-value]


def _lite(arch: str, pretrained: bool, image_size: int) -> tuple[nn.Sequential, str | None]:
    from torch import nn

    from mlsel.kernel.backbones import efficientnet_lite_weights_path, load_efficientnet_lite

    lite: Any = load_efficientnet_lite(arch, pretrained=pretrained, image_size=image_size)
    stages: OrderedDict[str, nn.Module] = OrderedDict()
    stages["stem"] = nn.Sequential(lite._conv_stem, lite._bn0, lite._swish)
    # the blocks run without drop-connect: detection batches are small enough already
    for i, block in enumerate(lite._blocks):
        stages[f"block{i}"] = block
    stages["head"] = nn.Sequential(lite._conv_head, lite._bn1, lite._swish)
    source = str(efficientnet_lite_weights_path(arch)) if pretrained else None
    return nn.Sequential(stages), source


def _stage_ends(module: nn.Sequential) -> tuple[dict[int, str], dict[int, int]]:
    """For each stride of :data:`FEATURE_STRIDES`: the last child at that stride, and
    its channels (one forward pass of a zero image)."""
    import torch

    ends: dict[int, str] = {}
    channels: dict[int, int] = {}
    x = torch.zeros(1, 3, _PROBE, _PROBE)
    was_training = module.training
    module.eval()
    with torch.no_grad():
        for name, child in module.named_children():
            x = child(x)
            stride = 2 ** round(torch.log2(torch.tensor(_PROBE / x.shape[-1])).item())
            if stride in FEATURE_STRIDES:
                ends[stride], channels[stride] = name, int(x.shape[1])
    module.train(was_training)
    return ends, channels


def build_body(
    backbone: str, *, pretrained: bool, image_size: int, frozen_bn: bool | None = None
) -> FeatureBody:
    """The stages of ``backbone`` and where C3, C4 and C5 come out.

    Args:
        backbone: one of :data:`BACKBONES`.
        pretrained: load the shipped ImageNet weights (``False``: random init).
        image_size: the training side (EfficientNet-Lite's static padding is sized by it).
        frozen_bn: BatchNorm as ``FrozenBatchNorm2d`` (default: when ``pretrained``; a
            model rebuilt to load saved pretrained-backbone weights passes ``True``).

    Raises:
        ConfigError: an unknown backbone.
        WeightsUnavailableError: ``pretrained`` and the shipped weights are not installed.
    """
    if backbone == "mobilenet_v2":
        module, source = _mobilenet_v2(pretrained)
    elif backbone in LITE_INPUT_SIZE:
        module, source = _lite(backbone, pretrained, image_size)
    else:
        raise ConfigError(
            f"No detection backbone {backbone!r}; the detectors stand on {list(BACKBONES)}."
        )
    ends, channels = _stage_ends(module)
    names = [name for name, _ in module.named_children()]
    last_of_c4 = names.index(ends[16])
    if frozen_bn if frozen_bn is not None else pretrained:
        freeze_batchnorm(module)
    mean, std = NORMALISATION[backbone]
    return FeatureBody(
        module=module,
        return_layers={ends[s]: str(i) for i, s in enumerate(FEATURE_STRIDES)},
        in_channels=[channels[s] for s in FEATURE_STRIDES],
        partial=names[last_of_c4 + 1 :],
        mean=tuple(mean),
        std=tuple(std),
        weights=source,
    )
