"""The torchvision detectors on the shipped backbones: anchors from the boxes, one step of
each, boxes in the image's own pixels, frozen backbones, and a logged run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mlsel.kernel.catalogue import SHIPPED_WEIGHTS, architectures, weights_available
from mlsel.kernel.errors import ConfigError, StopRun, TrainingError, WeightsUnavailableError
from mlsel.kernel.records import Config, EpochRecord
from mlsel.profilers import read_dataset, write_sample
from mlsel.trainers.detection import DETECTOR_ARCHS, DetectionPredictor, plan_anchors

pytest.importorskip("pycocotools")  # the COCO evaluator (the 'detection' extra)

SIZE = 128


def _installed(arch: str) -> bool:
    backbone = arch.split("_", 1)[1]
    return SHIPPED_WEIGHTS[backbone].installed()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Six 128 px images with one to three shapes each (5 train, 1 val), 2 classes."""
    root = write_sample(
        "shapes-detect", tmp_path_factory.mktemp("det") / "shapes", classes=2, per_class=6
    )
    return read_dataset(root)


def _config(arch: str, **changes: Any) -> Config:
    base = Config(
        backend="torchvision",
        arch=arch,
        finetune="head",
        epochs=1,
        image_size=SIZE,
        batch_size=8,
        lr=1e-3,
        optimizer="adamw",
        augment="light",
    )
    return base.with_(**changes)


def _fit(dataset: Any, config: Config, folder: Path, **kw: Any) -> Any:
    from mlsel.trainers.detection.train import fit_detector

    return fit_detector(dataset, config, torch.device("cpu"), artifact_dir=str(folder), **kw)


def _detect_everything(model: Any) -> None:
    """Keep every box, whatever its score (an untrained head scores under 0.05)."""
    if hasattr(model, "roi_heads"):
        model.roi_heads.score_thresh = 0.0
    else:
        model.score_thresh = 0.0


def test_anchors_follow_the_training_boxes() -> None:
    strides = (8, 16, 32, 64, 128)
    rng = np.random.default_rng(0)
    sides = rng.uniform(20, 60, 200)
    plan = plan_anchors(np.stack([sides, sides], axis=1), strides)
    low = float(np.quantile(sides, 0.05))
    assert plan.aspect_ratios == (1.0,)  # square boxes: one ratio
    assert plan.sizes[0][0] == pytest.approx(low, abs=0.1)  # the smallest anchor: 5 %
    assert plan.multiple == pytest.approx(low / 8, abs=1e-3)
    for level, stride in zip(plan.sizes, strides, strict=True):  # one multiple of stride
        assert level[0] == pytest.approx(plan.multiple * stride, abs=0.1)
    assert plan.statistics["n_boxes"] == 200 and "side_q50" in plan.statistics
    wide = plan_anchors(np.stack([sides * 2, sides], axis=1), strides)
    assert wide.aspect_ratios == (0.5,)  # h / w
    mixed = np.concatenate([np.stack([sides * 2, sides], 1), np.stack([sides, sides * 2], 1)])
    assert plan_anchors(mixed, strides).aspect_ratios == (0.5, 1.0, 2.0)
    assert plan_anchors(np.zeros((0, 2)), strides).source.startswith("default")
    fcos = plan_anchors(np.stack([sides, sides], axis=1), strides, anchor_free=True)
    assert fcos.sizes == tuple((float(s),) for s in strides)


def test_detectors_are_catalogued_on_their_shipped_backbones() -> None:
    assert set(DETECTOR_ARCHS) == set(architectures(backend="torchvision", task="detect"))
    assert {"fasterrcnn_mobilenet_v2", "retinanet_efficientnet_lite0"} <= set(DETECTOR_ARCHS)
    for arch in DETECTOR_ARCHS:
        config = Config("torchvision", arch)
        assert weights_available(config) == _installed(arch)


@pytest.mark.slow
@pytest.mark.parametrize("arch", DETECTOR_ARCHS)
def test_each_detector_trains_a_step_and_boxes_are_in_the_image_pixels(
    arch: str, shapes: Any, tmp_path: Path
) -> None:
    if not _installed(arch):
        pytest.skip(f"the backbone weights of {arch} are not installed")
    from PIL import Image

    from mlsel.kernel.images import decode

    result = _fit(shapes, _config(arch), tmp_path / "run")
    assert result.status == "completed" and len(result.curve) == 1
    assert result.score is not None and 0.0 <= result.score <= 1.0
    assert np.isfinite(result.curve[0].train_loss)

    predictor = DetectionPredictor(tmp_path / "run")
    model = predictor.detector_.model
    _detect_everything(model)
    # The model resizes any input to its square and maps boxes back: a copy upscaled by
    # (2, 3) with nearest neighbours resizes to the very same pixels, so its boxes are
    # the original's times (2, 3).
    pixels = decode(shapes.split("val")[0].path, SIZE)
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255
    big = x.repeat_interleave(3, dim=1).repeat_interleave(2, dim=2)  # 384 high, 256 wide
    with torch.no_grad():
        small_out, big_out = model([x])[0], model([big])[0]
    assert len(small_out["boxes"]) > 0
    assert torch.allclose(big_out["scores"], small_out["scores"], atol=1e-5)
    scale = torch.tensor([2.0, 3.0, 2.0, 3.0])
    assert torch.allclose(big_out["boxes"], small_out["boxes"] * scale, atol=1e-2)

    # The predictor, on a file: boxes in that file's pixels (256 x 384), and exactly the
    # model's boxes on the decoded file scaled back by (256 / 128, 384 / 128).
    path = tmp_path / "big.png"
    Image.fromarray((big.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    found = predictor.predict([str(path)], min_score=0.0)[0]
    boxes = np.asarray(found["boxes"])
    assert found["path"] == str(path) and len(boxes) > 0
    assert boxes[:, [0, 2]].max() <= 256 and boxes[:, [1, 3]].max() <= 384 and boxes.min() >= 0
    assert set(found["labels"]) <= set(shapes.classes)
    decoded = torch.from_numpy(decode(path, SIZE).copy()).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        direct = model([decoded])[0]
    order = np.argsort(-direct["scores"].numpy(), kind="stable")
    expected = direct["boxes"].numpy()[order] * np.array([2.0, 3.0, 2.0, 3.0])
    np.testing.assert_allclose(boxes, expected, atol=1e-2)


def _body(state: dict[str, Any], prefix: str = "backbone.body.") -> dict[str, Any]:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.slow
def test_frozen_backbones_stay_put_and_partial_trains_the_last_stage(
    shapes: Any, tmp_path: Path
) -> None:
    from mlsel.trainers.detection.data import load_split
    from mlsel.trainers.detection.train import prepare_detector

    arch = "retinanet_mobilenet_v2"
    if not _installed(arch):
        pytest.skip("the MobileNetV2 backbone weights are not installed")
    train = load_split(shapes, "train", SIZE)
    start = prepare_detector(shapes, _config(arch), train).model.state_dict()
    for finetune in ("head", "partial"):
        _fit(shapes, _config(arch, finetune=finetune, lr=1e-2), tmp_path / finetune)
        saved = torch.load(tmp_path / finetune / "model.pt", weights_only=True)
        state = saved["state_dict"]
        changed = {k for k, v in _body(state).items() if not torch.equal(v, start[k])}
        fpn = _body(state, "backbone.fpn.")
        assert any(not torch.equal(v, start[k]) for k, v in fpn.items())  # the FPN trains
        if finetune == "head":
            assert not changed  # weights and BatchNorm statistics alike
        else:  # MobileNetV2's stride-32 stage: features 14..18
            assert changed and all(
                k.split(".")[2] in {"14", "15", "16", "17", "18"} for k in changed
            )
        assert json.loads((tmp_path / finetune / "anchors.json").read_text())["strides"][0] == 8


@pytest.mark.slow
def test_a_run_is_logged_with_its_score_metrics_memory_and_anchors(shapes: Any) -> None:
    from mlsel.experiment_store.store import Store
    from mlsel.trainers import train

    arch = "fcos_mobilenet_v2"
    if not _installed(arch):
        pytest.skip("the MobileNetV2 backbone weights are not installed")
    store = Store.open()
    seen: list[EpochRecord] = []
    run_id, result = train(shapes, _config(arch, epochs=2), store=store, on_epoch=seen.append)
    record = store.get_run(run_id)
    assert record.status == "completed" and len(store.epochs(run_id)) == 2 == len(seen)
    assert result.score == pytest.approx(result.metrics["map"])
    assert record.result.score == pytest.approx(result.score)
    assert result.metrics["mAP50-95"] == result.metrics["map"]
    assert {"map50", "map75", "n_val"} <= set(result.metrics)
    assert any(k.startswith("ap/") for k in result.metrics)
    assert record.result.peak_host_mb is not None and record.result.peak_host_mb > 0
    assert result.hardware["anchors"].startswith("anchor-free")
    assert "mobilenetv2" in result.hardware["weights"]
    folder = Path(result.artifact_dir)
    for name in ("model.pt", "anchors.json", "classes.json", "preprocessing.json"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "classes.json").read_text()) == list(shapes.classes)

    # Its model.pt is a detector weights file: a later run starts from it and says so.
    again = train(shapes, _config(arch), store=store, weights=str(folder / "model.pt"))[1]
    assert again.hardware["weights"] == f"{folder / 'model.pt'} (detector)"
    assert "detector_weights_left_out" not in again.hardware  # its anchors came with it


@pytest.mark.slow
def test_a_stopped_run_keeps_its_best_epoch(shapes: Any, tmp_path: Path) -> None:
    arch = "retinanet_mobilenet_v2"
    if not _installed(arch):
        pytest.skip("the MobileNetV2 backbone weights are not installed")

    def stop(record: EpochRecord) -> None:
        raise StopRun("timeout")

    result = _fit(shapes, _config(arch, epochs=5), tmp_path / "run", on_epoch=stop)
    assert result.status == "timeout" and len(result.curve) == 1
    assert (tmp_path / "run" / "model.pt").is_file()


def test_a_non_finite_loss_is_a_training_error(shapes: Any) -> None:
    from mlsel.trainers.detection.data import load_split
    from mlsel.trainers.detection.train import _train_epoch

    class Diverged(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, images: Any, targets: Any) -> dict[str, Any]:
            return {"loss_box": self.w * float("nan")}

    detector: Any = type("D", (), {"model": Diverged()})()
    split = load_split(shapes, "train", 64)
    optimizer = torch.optim.SGD(detector.model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(TrainingError, match="loss of .* became nan at epoch 1"):
        _train_epoch(
            detector,
            split,
            _config("fcos_mobilenet_v2"),
            optimizer,
            generator,
            torch.device("cpu"),
            1,
        )


def test_configs_a_detector_cannot_train_fail_before_a_run(shapes: Any) -> None:
    from mlsel.trainers import prepare
    from mlsel.trainers.run import get_backend

    backend = get_backend("torchvision")
    with pytest.raises(ConfigError, match="is a detector; the dataset's task is 'classify'"):
        backend.check(_config("fcos_mobilenet_v2"), "classify")
    with pytest.raises(ConfigError, match="resnet18 is a classifier"):
        backend.check(_config("resnet18"), "detect")
    with pytest.raises(ConfigError, match="'image_size' parameter of train"):
        prepare(shapes, _config("fcos_mobilenet_v2", image_size=32))
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        prepare(shapes, _config("fcos_mobilenet_v2"), weights="/no/such/file.pt")


def test_detector_files_are_found_by_name_and_foreign_ones_refused(
    mlsel_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsel.kernel.home import Home
    from mlsel.trainers.detection.weights import detector_weights_file, load_detector_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    config = _config("retinanet_mobilenet_v2")
    assert detector_weights_file(config) is None
    assert detector_weights_file(config.with_(pretrained=None)) is None
    folder = Home.resolve().weights
    folder.mkdir(parents=True)
    torch.save({"other.weight": torch.zeros(2)}, folder / "retinanet_mobilenet_v2-coco.pth")
    found = detector_weights_file(config)
    assert found == folder / "retinanet_mobilenet_v2-coco.pth"
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    with pytest.raises(WeightsUnavailableError, match="do not fit retinanet_mobilenet_v2"):
        load_detector_weights(model, found, "retinanet_mobilenet_v2")
