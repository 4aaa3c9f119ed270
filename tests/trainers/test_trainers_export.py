"""`export_model`: a real linear-probe run becomes an ONNX folder that runs without mlsel or
torch, decodes as training did, predicts what the run predicts, and is refused (leaving
nothing) when it would not. Real digits at 64 px, offline, on CPU."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mlsel.kernel.errors import DatasetError, ExportError
from mlsel.kernel.images import decode as kernel_decode
from mlsel.trainers.export import _files, _onnx, export_model
from mlsel.trainers.export._parity import load_predict_module
from tests.served import modules_of_predict_py
from tests.trained_probe import TrainedProbe as Trained
from tests.trained_probe import trained_probe


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path) -> Iterator[Trained]:
    with trained_probe(tmp_path_factory.mktemp("export"), _session_cache) as run:
        yield run


@pytest.fixture(scope="module")
def exported(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "digits-model"
    report = export_model(
        trained.run_dir,
        out,
        parity_images=trained.val,
        run_record=trained.record,
        store=trained.store,
    )
    assert report.folder == out and report.parity.passed
    return out


def test_the_export_is_complete_and_its_parity_holds_on_the_validation_images(
    trained: Trained, exported: Path
) -> None:
    names = {p.name for p in exported.iterdir()}
    assert names == {
        "model.onnx",
        "classes.json",
        "preprocessing.json",
        "metadata.json",
        "predict.py",
        "requirements.txt",
        "README.md",
        "MODEL_CARD.md",
    }
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # no temp
    metadata = json.loads((exported / "metadata.json").read_text())
    assert metadata["model_id"] == trained.run_id
    assert metadata["dataset"] == {
        "fingerprint": trained.dataset.fingerprint,
        "name": trained.dataset.name,
    }
    assert metadata["classes"] == list(trained.dataset.classes)
    assert metadata["input"]["shape"] == ["N", 64, 64, 3]
    assert metadata["config"]["finetune"] == "linear"
    parity = metadata["parity"]
    assert parity["images"] == len(trained.val) and not parity["synthetic"]
    assert parity["top1_agreement"] == 1.0 and parity["max_abs_diff"] <= 1e-4
    card = (exported / "MODEL_CARD.md").read_text()
    for part in ("n_images", "Confusion matrix", "f1_macro", "efficientnet_lite0", "cpu_count"):
        assert part in card
    assert "python predict.py" in (exported / "README.md").read_text()

    # The ONNX graph takes uint8 NHWC images of any batch and gives probabilities.
    import onnxruntime

    session = onnxruntime.InferenceSession(str(exported / "model.onnx"))
    (given,) = session.get_inputs()
    assert (given.name, given.type, given.shape[1:]) == ("images", "tensor(uint8)", [64, 64, 3])
    batch = np.stack([kernel_decode(p, 64) for p in trained.val[:5]])
    (out,) = session.run(None, {"images": batch})
    assert out.shape == (5, 4) and np.allclose(out.sum(1), 1, atol=1e-5)


def test_an_export_whose_preprocessing_drifted_is_refused_and_leaves_nothing(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _onnx.normalisation

    def drifted(preprocessing):  # noqa: ANN001, ANN202 - a graph normalising as it should not
        mean, std = real(preprocessing)
        return tuple(m + 0.2 for m in mean), tuple(s * 1.5 for s in std)

    monkeypatch.setattr(_onnx, "normalisation", drifted)
    out = tmp_path / "drifted"
    with pytest.raises(ExportError, match="predicts differently") as info:
        export_model(trained.run_dir, out, parity_images=trained.val, run_record=trained.record)
    message = str(info.value)
    assert "validation images" in message and "max probability difference" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary sibling


def test_an_existing_folder_is_refused_unless_forced_and_no_images_means_synthetic(
    trained: Trained, tmp_path: Path
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(ExportError, match="exists and is not empty.*--force"):
        export_model(trained.run_dir, out)
    assert (out / "mine.txt").read_text() == "keep me"
    report = export_model(trained.run_dir, out, force=True)
    assert not (out / "mine.txt").exists() and (out / "model.onnx").is_file()
    assert report.parity.synthetic and report.parity.passed and report.parity.images == 8
    assert "synthetic" in report.notes[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_predict_py_needs_neither_mlsel_nor_torch_and_requirements_name_its_imports(
    trained: Trained, exported: Path, tmp_path: Path
) -> None:
    loaded = modules_of_predict_py(exported, trained.val[0], tmp_path)
    assert "predict" in loaded and {"onnxruntime", "numpy", "PIL"} <= loaded
    assert not loaded & {"mlsel", "torch", "torchvision", "ultralytics"}

    tree = ast.parse((exported / "predict.py").read_text())
    roots = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    third_party = roots - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"onnxruntime", "numpy", "PIL"}
    required = (exported / "requirements.txt").read_text().split()
    names = {line.split(">=")[0] for line in required}
    distribution = dict(_files.PREDICT_REQUIREMENTS)
    assert (
        names
        == {distribution[root] for root in third_party}
        == {
            "onnxruntime",
            "numpy",
            "Pillow",
        }
    )


def test_predict_py_command_line_skips_an_unreadable_file_with_one_line(
    trained: Trained, exported: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            str(exported / "predict.py"),
            str(bad),
            str(trained.val[0]),
            "--json",
            "--top-k",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert str(bad) in line and "Cannot decode image" in line
    (row,) = json.loads(result.stdout)
    assert row["path"] == str(trained.val[0]) and len(row["top_k"]) == 3
    assert row["label"] == row["top_k"][0]["label"] in trained.dataset.classes


# -- the decoder ------------------------------------------------------------------------


def _battery(folder: Path) -> dict[str, Path]:
    """Images in every mode the decoder treats specially, and shapes it resizes."""
    rng = np.random.default_rng(7)
    made: dict[str, Path] = {}

    def save(name: str, image: Image.Image, **options: Any) -> None:
        made[name] = folder / name
        image.save(made[name], **options)

    noise = rng.integers(0, 256, size=(90, 130, 4), dtype=np.uint8)
    rgba = noise.copy()
    rgba[:, :40, 3] = 0  # fully transparent band
    rgba[:, 40:80, 3] = 128
    save("rgba.png", Image.fromarray(rgba))
    palette = Image.fromarray(np.ascontiguousarray(noise[..., :3])).convert(
        "P", palette=Image.Palette.ADAPTIVE
    )
    save("p-transparency.png", palette, transparency=3)
    save("la.png", Image.fromarray(np.ascontiguousarray(noise[..., :2])))
    save("l.png", Image.fromarray(np.ascontiguousarray(noise[..., 0])))
    wide = (rng.integers(0, 4096, size=(70, 50))).astype(np.uint16)
    save("i16.png", Image.fromarray(wide))
    save("cmyk.jpg", Image.fromarray(noise).convert("CMYK"), quality=90)
    gradient = np.linspace(0, 255, 640, dtype=np.uint8)
    photo = np.stack([np.tile(gradient, (360, 1))] * 3, axis=-1)
    photo[::7] = rng.integers(0, 256, size=photo[::7].shape, dtype=np.uint8)
    save("wide-photo.jpg", Image.fromarray(photo), quality=85)  # drafted at 32 and 64 px
    save("non-square.png", Image.fromarray(np.ascontiguousarray(noise[:31, :97, :3])))
    save("one-bit.png", Image.fromarray(noise[..., 0] > 128))
    key = Image.fromarray(np.ascontiguousarray(noise[..., :3]))
    save("rgb-colour-key.png", key, transparency=tuple(int(v) for v in noise[0, 0, :3]))
    # Over LARGE_PIXELS (16 MP) and not a JPEG: decoded once, reduced, then resized.
    side = np.linspace(0, 255, 4100, dtype=np.uint8)
    large = np.stack(
        [
            np.tile(side, (4000, 1)),
            np.tile(side[:4000, None], (1, 4100)),
            np.full((4000, 4100), 90, np.uint8),
        ],
        axis=-1,
    )
    save("large.png", Image.fromarray(large), compress_level=1)
    return made


def test_the_exported_decoder_is_the_training_decoder_pixel_for_pixel(tmp_path: Path) -> None:
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "predict.py").write_text(_files.predict_source())
    exported = load_predict_module(tmp_path / "export")
    assert exported.decode.__module__ == exported.__name__  # its own copy, not the kernel's
    images = _battery(tmp_path)
    for name, path in images.items():
        for size in (32, 64):
            want = kernel_decode(path, size)
            for given in (path, str(path), path.read_bytes()):
                got = exported.decode(given, size)
                assert got.dtype == np.uint8 and got.shape == (size, size, 3), name
                assert np.array_equal(got, want), f"{name} at {size} px from {type(given)}"
            if name != "large.png":  # a PIL image is used as it is: no draft, no reduce
                with Image.open(path) as image:
                    assert np.array_equal(exported.decode(image, size), kernel_decode(image, size))
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"nope")
    with pytest.raises(exported.ImageError, match="Cannot decode image .*garbage.jpg") as info:
        exported.decode(garbage, 32)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    with pytest.raises(DatasetError):
        kernel_decode(garbage, 32)  # the kernel's own error class, the same message
