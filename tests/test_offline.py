"""The suite runs offline: the guard of ``conftest.py`` refuses anything but loopback."""

from __future__ import annotations

import os
import socket
import threading

import pytest


def test_tests_run_with_mlsel_offline() -> None:
    assert os.environ["MLSEL_OFFLINE"] == "1"


def test_a_connection_beyond_loopback_is_refused(_no_network: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        with pytest.raises(ConnectionRefusedError, match="never use the network"):
            sock.connect(("192.0.2.1", 80))  # TEST-NET-1: routed nowhere
    assert _no_network == ["('192.0.2.1', 80)"]
    _no_network.clear()  # this test wanted the attempt; the guard must not fail it


def test_loopback_and_unix_sockets_still_work(tmp_path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        accepted = threading.Thread(target=lambda: server.accept()[0].close())
        accepted.start()
        with socket.create_connection(("localhost", port), timeout=5):
            pass
        accepted.join(5)
    left, right = socket.socketpair()
    left.sendall(b"x")
    assert right.recv(1) == b"x"
    left.close()
    right.close()
