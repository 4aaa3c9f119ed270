"""The ImageNet probes: the ONNX export answers as the torch models do, is made once,
mends a damaged cache, and spares a profile the torch and scikit-learn imports."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlsel.kernel.home import machine_cache_dir as cache_dir
from mlsel.profilers._pixels import THUMB_SIDE
from mlsel.profilers._probes import ImageNetProbes, probes_path, run_probes


def _thumbs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, THUMB_SIDE, THUMB_SIDE, 3), dtype=np.uint8)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLSEL_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("MLSEL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "mlsel"
    assert probes_path().parent == tmp_path / "xdg" / "mlsel"


@pytest.mark.slow
def test_onnx_probes_answer_as_the_torch_models_do() -> None:
    import torch

    from mlsel.profilers._probes import _probe_module

    probes = ImageNetProbes()
    session = probes.get()
    assert session is not None, probes.error_
    thumbs = _thumbs(30)
    features, logits = run_probes(session, thumbs)
    with torch.inference_mode():
        want_features, want_logits = _probe_module()(torch.from_numpy(thumbs))
    assert features.shape == (30, 1280) and logits.shape == (30, 1000)
    np.testing.assert_allclose(features, want_features.numpy(), atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(logits, want_logits.numpy(), atol=1e-3, rtol=1e-3)
    assert (logits.argmax(1) == want_logits.numpy().argmax(1)).all()


@pytest.mark.slow
def test_the_export_is_made_once_and_a_damaged_one_is_made_again(caplog) -> None:
    first = ImageNetProbes()
    assert first.get() is not None, first.error_
    path = probes_path()
    assert path.is_file() and oct(path.stat().st_mode & 0o777) == "0o644"
    again = ImageNetProbes()
    assert again.get() is not None and not again.exported_
    path.write_bytes(b"half a file")
    with caplog.at_level(logging.WARNING):
        mended = ImageNetProbes()
        assert mended.get() is not None, mended.error_
    assert mended.exported_ and "cannot be opened" in caplog.text
    assert path.stat().st_size > 1_000_000
    assert not list(path.parent.glob("*.partial"))


def test_missing_weights_leave_the_probes_out_with_a_reason(monkeypatch) -> None:
    from mlsel.kernel import backbones
    from mlsel.kernel.errors import WeightsUnavailableError

    def missing() -> Path:
        raise WeightsUnavailableError("The offline MobileNetV2 ImageNet weights are not installed.")

    monkeypatch.setattr(backbones, "mobilenet_v2_weights_path", missing)
    probes = ImageNetProbes()
    assert probes.get() is None
    assert "not installed" in (probes.error_ or "")


@pytest.mark.slow
def test_a_profile_with_landmarkers_imports_neither_torch_nor_sklearn(tmp_path: Path) -> None:
    from PIL import Image

    assert ImageNetProbes().get() is not None  # the export, made once for the session
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "d" / label).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "d" / label / f"{i}.jpg")
    script = (
        "import sys\n"
        "from mlsel.profilers import read_dataset\n"
        "from mlsel.profilers.profile import profile_dataset\n"
        f"p = profile_dataset(read_dataset({str(tmp_path / 'd')!r}))\n"
        "assert p.features['lm_deep_images'] == 16, p.warnings\n"
        "print(','.join(m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules) or 'none')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"


@pytest.mark.slow
def test_the_first_profile_says_it_exports_the_probes(tmp_path: Path, monkeypatch) -> None:
    from PIL import Image

    from mlsel.profilers import read_dataset
    from mlsel.profilers._probes import EXPORT_STAGE
    from mlsel.profilers.profile import profile_dataset

    monkeypatch.setenv("MLSEL_CACHE_DIR", str(tmp_path / "empty-cache"))
    for label, colour in (("red", (200, 20, 20)), ("blue", (20, 20, 200))):
        (tmp_path / "d" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (24, 24), colour).save(tmp_path / "d" / label / f"{i}.png")
    stages: list[tuple[str, int, int]] = []
    profile = profile_dataset(
        read_dataset(tmp_path / "d"), progress=lambda *event: stages.append(event)
    )
    assert (EXPORT_STAGE, 0, 1) in stages and (EXPORT_STAGE, 1, 1) in stages
    assert profile.features["lm_deep_images"] == 8.0
    stages.clear()
    profile_dataset(read_dataset(tmp_path / "d"), progress=lambda *event: stages.append(event))
    assert not [s for s in stages if s[0] == EXPORT_STAGE]


def test_without_onnx_the_probes_are_skipped_with_the_fix(monkeypatch, tmp_path: Path) -> None:
    import importlib.util

    monkeypatch.setenv("MLSEL_CACHE_DIR", str(tmp_path))  # nothing exported yet
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    probes = ImageNetProbes()
    assert probes.get() is None
    assert "pip install onnx" in (probes.error_ or "")
    assert not list(tmp_path.iterdir())
