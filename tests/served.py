"""What the export and service tests share: a free local port, a server process that is
always killed, and the modules an exported ``predict.py`` loads under ``python -I``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

__all__ = ["free_port", "modules_of_predict_py", "serving"]

_PROBE_MODULES = """
import sys
sys.path.insert(0, sys.argv[1])
import predict
model = predict.Model()
top = model.predict([sys.argv[2]], top_k=2)
assert len(top) == 1 and len(top[0]) == 2, top
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(command: list[str], port: int, cwd: Path | None = None, **env: str) -> Iterator[str]:
    """Start ``command``; yield its URL once ``/readyz`` answers 200 (within 60 s); always
    stop it."""
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}: {process.stdout.read()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the server did not become ready within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def modules_of_predict_py(exported: Path, image: Path, cwd: Path) -> set[str]:
    """The top-level modules loaded once ``exported``'s ``predict.py`` (imported in an
    isolated ``python -I``) has predicted ``image``."""
    result = subprocess.run(
        [sys.executable, "-I", "-c", _PROBE_MODULES, str(exported), str(image)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())
