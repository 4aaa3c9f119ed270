"""Fixtures every test shares: a private mlsel home and an offline Ultralytics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"

# Ultralytics must never try the network or write to the user's config folder.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_VERBOSE", "false")


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One machine cache for the whole run: the ImageNet probes are exported once."""
    return tmp_path_factory.mktemp("mlsel-cache")


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, _session_cache: Path
):
    """Every test gets its own MLSEL_HOME and YOLO_CONFIG_DIR; nothing leaks to ~/.mlsel
    or ~/.cache/mlsel."""
    home = tmp_path_factory.mktemp("mlsel-home")
    monkeypatch.setenv("MLSEL_HOME", str(home))
    monkeypatch.setenv("MLSEL_CACHE_DIR", str(_session_cache))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("yolo-config")))
    monkeypatch.setenv("MLSEL_NO_BUNDLED", "1")
    yield home


@pytest.fixture
def mlsel_home(_isolated_home: Path) -> Path:
    """The private MLSEL_HOME of this test."""
    return _isolated_home


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the project root; skips the test when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the project root")
    return SHARED
