"""Fixtures every test shares: a private mlsel home, an offline Ultralytics, and no network
but loopback."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class NetworkBlocked(ConnectionRefusedError):
    """A test tried to reach a host that is not this machine."""


def _loopback(family: int, address: Any) -> bool:
    if family == getattr(socket, "AF_UNIX", None):
        return True  # multiprocessing's pipes and Unix sockets
    host = address[0] if isinstance(address, tuple) else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """MLSEL_OFFLINE=1, and every connection to a host other than loopback is refused and
    fails the test (worker processes inherit MLSEL_OFFLINE, which stops downloads there)."""
    monkeypatch.setenv("MLSEL_OFFLINE", "1")
    attempts: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if not _loopback(sock.family, address):
            attempts.append(repr(address))
            raise NetworkBlocked(f"tests never use the network: connection to {address!r}")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempts
    if attempts:
        pytest.fail(f"the test tried to reach the network: {', '.join(attempts)}")
