"""`export_model` on a real Ultralytics classifier (yolo11n-cls, 1 epoch at 32 px on real
digits): Ultralytics' own exporter behind mlsel's interface, predict.py preparing images as
Ultralytics' predictor does, parity with it, and detection runs refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mlsel.experiment_store.store import Store
from mlsel.kernel.errors import ExportError
from mlsel.kernel.records import Config
from mlsel.profilers import read_dataset, write_sample
from mlsel.trainers import train
from mlsel.trainers.export import export_model
from mlsel.trainers.export._parity import load_predict_module
from mlsel.trainers.ultralytics_backend import YoloPredictor
from tests.served import modules_of_predict_py

YOLO_CLS = Config(
    backend="ultralytics",
    arch="yolo11n-cls",
    pretrained=None,
    finetune="full",
    epochs=1,
    image_size=32,
    lr=1e-3,
    batch_size=16,
    augment="none",
)


class TrainedYolo:
    def __init__(self, root: Path) -> None:
        data = write_sample("digits", root / "digits", classes=4, per_class=12)
        self.dataset = read_dataset(data)
        self.store = Store.open(root / "home")
        self.run_id, result = train(self.dataset, YOLO_CLS, store=self.store, device="cpu")
        self.run_dir = Path(result.artifact_dir)
        self.val = [Path(item.path) for item in self.dataset.split("val")]


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, _session_cache: Path
) -> Iterator[TrainedYolo]:
    root = tmp_path_factory.mktemp("yolo-export")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSEL_HOME", str(root / "home"))
        patch.setenv("MLSEL_CACHE_DIR", str(_session_cache))
        patch.setenv("MLSEL_OFFLINE", "1")
        patch.setenv("MLSEL_NO_BUNDLED", "1")
        patch.setenv("YOLO_CONFIG_DIR", str(root / "yolo-config"))
        yield TrainedYolo(root)


def _files_of(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def exported(trained: TrainedYolo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    before = _files_of(trained.run_dir)
    out = tmp_path_factory.mktemp("exported") / "yolo-model"
    report = export_model(
        trained.run_dir,
        out,
        parity_images=trained.val,
        run_record=trained.store.get_run(trained.run_id),
        store=trained.store,
    )
    assert report.folder == out and report.parity.passed, report.parity.describe()
    assert _files_of(trained.run_dir) == before  # Ultralytics exported a copy elsewhere
    return out


def test_an_ultralytics_classifier_exports_with_mlsel_s_interface_and_parity(
    trained: TrainedYolo, exported: Path
) -> None:
    names = {p.name for p in exported.iterdir()}
    assert {"model.onnx", "predict.py", "preprocessing.json", "MODEL_CARD.md"} <= names
    metadata = json.loads((exported / "metadata.json").read_text())
    parity = metadata["parity"]
    assert parity["images"] == len(trained.val) and not parity["synthetic"]
    assert parity["top1_agreement"] == 1.0 and parity["max_abs_diff"] <= 1e-4
    preprocessing = json.loads((exported / "preprocessing.json").read_text())
    assert preprocessing["transform"] == "ultralytics-classify"
    assert preprocessing["resize"] == {"shortest_edge": 32, "interpolation": "bilinear"}
    assert preprocessing["crop"] == [32, 32] and preprocessing["image_size"] == 32
    assert "Ultralytics" in (exported / "README.md").read_text()

    import onnxruntime

    session = onnxruntime.InferenceSession(str(exported / "model.onnx"))
    (given,), (output,) = session.get_inputs(), session.get_outputs()
    assert (given.name, given.type, given.shape[1:]) == ("images", "tensor(uint8)", [32, 32, 3])
    assert output.name == "probabilities"
    model = load_predict_module(exported).Model(exported)
    batch = np.stack([model.decode(p) for p in trained.val[:5]])
    (out,) = session.run(None, {"images": batch})
    assert out.shape == (5, 4) and np.allclose(out.sum(1), 1, atol=1e-5)  # one softmax


def test_predict_py_agrees_with_ultralytics_own_predictions(
    trained: TrainedYolo, exported: Path
) -> None:
    reference = YoloPredictor(trained.run_dir, "cpu")
    want = reference.predict_proba(trained.val)
    model = load_predict_module(exported).Model(exported)
    got = model.predict_proba(trained.val)
    assert [row[0]["label"] for row in model.predict(trained.val)] == reference.predict(trained.val)
    assert np.abs(got - want).max() <= 1e-4


def test_predict_py_of_a_yolo_export_needs_neither_mlsel_nor_torch(
    trained: TrainedYolo, exported: Path, tmp_path: Path
) -> None:
    loaded = modules_of_predict_py(exported, trained.val[0], tmp_path)
    assert "predict" in loaded and {"onnxruntime", "numpy", "PIL"} <= loaded
    assert not loaded & {"mlsel", "torch", "torchvision", "ultralytics", "cv2"}


def _odd_images(folder: Path) -> dict[str, Path]:
    """Images whose reading differs between decoders: alpha, palettes, 16-bit, EXIF."""
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, size=(45, 70, 4), dtype=np.uint8)
    made: dict[str, Path] = {}

    def save(name: str, image: Image.Image, **options: Any) -> None:
        made[name] = folder / name
        image.save(made[name], **options)

    save("rgba.png", Image.fromarray(noise))
    rgb = Image.fromarray(np.ascontiguousarray(noise[..., :3]))
    save("palette.png", rgb.convert("P", palette=Image.Palette.ADAPTIVE), transparency=3)
    save("grey16.png", Image.fromarray(rng.integers(0, 65536, (50, 30)).astype(np.uint16)))
    exif = rgb.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: Ultralytics reads it upright
    save("rotated.jpg", rgb, exif=exif, quality=90)
    save("tall.png", rgb.transpose(Image.Transpose.ROTATE_90).resize((23, 61)))
    return made


def test_decode_ultralytics_gives_the_pixels_ultralytics_predicts_on(
    trained: TrainedYolo, exported: Path, tmp_path: Path
) -> None:
    predictor = YoloPredictor(trained.run_dir, "cpu")
    yolo = predictor.model_
    module = load_predict_module(exported)
    yolo.predict([str(trained.val[0])], verbose=False)
    seen: list[Any] = []
    # The tensor Ultralytics' predictor feeds its model (set once it has predicted).
    running: Any = yolo.predictor
    inference = running.inference

    def spy(image: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(image.clone())
        return inference(image, *args, **kwargs)

    running.inference = spy
    for name, path in _odd_images(tmp_path).items():
        seen.clear()
        yolo.predict([str(path)], verbose=False)
        want = np.rint(seen[0][0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        assert np.array_equal(module.decode_ultralytics(path, 32, 32, "bilinear"), want), name


def test_detection_runs_are_refused_in_one_line(trained: TrainedYolo, tmp_path: Path) -> None:
    run = tmp_path / "detect-run"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "best.pt").write_bytes(b"")
    (run / "config.json").write_text(json.dumps({"arch": "yolo11n", "backend": "ultralytics"}))
    with pytest.raises(ExportError, match="detection run; exporting detectors is not") as info:
        export_model(run, tmp_path / "out")
    assert "\n" not in str(info.value) and "Ultralytics' own exporter" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detect-run"]


def test_the_service_of_a_yolo_export_answers_as_predict_py(
    trained: TrainedYolo, tmp_path: Path
) -> None:

    out = tmp_path / "served"
    export_model(trained.run_dir, out, service=True, parity_images=trained.val[:4])
    script = (
        "import json, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from app import create_app\n"
        "from predict import Model\n"
        "paths = sys.argv[1:]\n"
        "with TestClient(create_app()) as client:\n"
        "    files = [('files', (p, open(p, 'rb').read(), 'image/png')) for p in paths]\n"
        "    served = client.post('/predict', files=files, params={'top_k': 1}).json()\n"
        "want = Model().predict(paths)\n"
        "got = [p['top_k'] for p in served['predictions']]\n"
        "print(json.dumps([g[0]['label'] == w[0]['label'] and abs(g[0]['probability'] - "
        "w[0]['probability']) < 1e-6 for g, w in zip(got, want)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, trained.val[:6])],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MODEL_DIR": str(out)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [True] * 6
