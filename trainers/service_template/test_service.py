"""Tests of this folder's REST service, in-process with FastAPI's TestClient.

Run them here: ``pip install pytest httpx``, then ``python -m pytest -q test_service.py``.
They need only the folder itself: the model, ``predict.py`` and ``app.py``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from app import Settings, create_app
from fastapi.testclient import TestClient
from PIL import Image

HERE = Path(__file__).resolve().parent
CLASSES = json.loads((HERE / "classes.json").read_text(encoding="utf-8"))
N_CLASSES = len(CLASSES)


def _png(seed: int = 0, size: int = 48) -> bytes:
    """A small RGB image, different for every seed."""
    image = Image.new("RGB", (size, size), ((seed * 67) % 256, (seed * 131) % 256, 90))
    for x in range(0, size, 6):
        image.putpixel((x, (x * (seed + 3)) % size), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(model_dir=HERE, max_files=3, max_upload_bytes=256 * 1024)
    with TestClient(create_app(settings)) as started:  # `with` runs the start-up
        yield started


def _error(response, status: int) -> str:  # noqa: ANN001
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert message and "\n" not in message
    return message


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_not_ready_before_start_up() -> None:
    cold = TestClient(create_app(Settings(model_dir=HERE)))  # no `with`: no start-up
    assert cold.get("/healthz").status_code == 200
    _error(cold.get("/readyz"), 503)


def test_metadata(client: TestClient) -> None:
    meta = client.get("/metadata").json()
    assert meta["classes"] == CLASSES
    assert meta["image_size"] > 0
    assert meta["model"]


def test_predict_one_file(client: TestClient) -> None:
    response = client.post("/predict", files={"files": ("a.png", _png(1), "image/png")})
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["filename"] == "a.png"
    ranked = prediction["top_k"]
    assert len(ranked) == min(3, N_CLASSES)
    assert {item["label"] for item in ranked} <= set(CLASSES)
    probabilities = [item["probability"] for item in ranked]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probabilities)


def test_predict_many_files_and_the_field_file(client: TestClient) -> None:
    files = [("files", (f"{i}.png", _png(i), "image/png")) for i in range(2)]
    files.append(("file", ("c.png", _png(2), "image/png")))
    response = client.post("/predict", files=files, params={"top_k": 1})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["filename"] for p in predictions] == ["0.png", "1.png", "c.png"]
    assert all(len(p["top_k"]) == 1 for p in predictions)


def test_predict_raw_bytes_agrees_with_multipart(client: TestClient) -> None:
    raw = client.post("/predict", content=_png(5), headers={"content-type": "image/png"})
    part = client.post("/predict", files={"file": ("x.png", _png(5), "image/png")})
    assert raw.status_code == 200, raw.text
    assert raw.json()["predictions"][0]["top_k"] == part.json()["predictions"][0]["top_k"]


def test_bad_input_is_a_json_4xx(client: TestClient) -> None:
    not_image = {"files": ("notes.txt", b"not an image at all", "text/plain")}
    assert "notes.txt" in _error(client.post("/predict", files=not_image), 415)
    _error(client.post("/predict", content=b"", headers={"content-type": "image/png"}), 400)
    _error(client.post("/predict", content=b"x" * (300 * 1024)), 413)
    four = [("files", (f"{i}.png", _png(i), "image/png")) for i in range(4)]
    assert "too many files" in _error(client.post("/predict", files=four), 413)
    one = {"files": ("a.png", _png(1), "image/png")}
    _error(client.post("/predict", files=one, params={"top_k": 0}), 422)
    _error(client.post("/predict", files=one, params={"top_k": N_CLASSES + 1}), 422)
    _error(client.post("/predict", files=one, params={"top_k": "many"}), 422)
    _error(client.post("/predict", json={"image": "a.png"}), 415)


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]
