"""The REST service of an exported model: its files, FastAPI's TestClient, a real uvicorn
process on 127.0.0.1 driven with httpx (bad input included), ``python app.py``, and the
folder's own generated tests."""

from __future__ import annotations

import importlib
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mlsel.kernel.errors import ConfigError
from mlsel.trainers import service
from tests.served import free_port, serving
from tests.trained_probe import trained_probe
from tests.trainers._service_export import CLASSES, write_export

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0  # seconds, for every request to a real server


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in export (a tiny network, 3 classes) with the service written into it."""
    out = write_export(tmp_path_factory.mktemp("export") / "model")
    service.write_service(out)
    return out


@pytest.fixture(scope="module")
def real(
    tmp_path_factory: pytest.TempPathFactory, _session_cache: Path
) -> tuple[Path, Path, list[Path]]:
    """``(export folder, run folder, validation images)`` of a real linear-probe run,
    exported by ``export_model(..., service=True)``."""
    from mlsel.trainers.export import export_model

    root = tmp_path_factory.mktemp("real")
    with trained_probe(root, _session_cache) as probe:
        run_id, run_dir, val = probe.run_id, probe.run_dir, probe.val
    report = export_model(run_dir, root / "export", service=True, parity_images=val)
    assert report.parity.passed and report.model_id == run_id
    return report.folder, run_dir, val


@contextmanager
def _imported_app(folder: Path) -> Iterator[ModuleType]:
    """``folder``'s app.py imported as ``app`` (with its own ``predict``), then forgotten."""
    saved: dict[str, ModuleType] = {
        name: sys.modules.pop(name)
        for name in ("app", "predict", "prediction_log")
        if name in sys.modules
    }
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("app")
    finally:
        sys.path.remove(str(folder))
        for name in ("app", "predict", "prediction_log"):
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def app_module(folder: Path) -> Iterator[ModuleType]:
    with _imported_app(folder) as module:
        yield module


@pytest.fixture(scope="module")
def client(app_module: ModuleType, folder: Path) -> Iterator[TestClient]:
    settings = app_module.Settings(model_dir=folder, max_files=4, max_upload_bytes=200_000)
    with TestClient(app_module.create_app(settings)) as started:
        yield started


def _png(seed: int, size: int = 40) -> bytes:
    image = Image.new("RGB", (size, size), ((seed * 53) % 256, (seed * 97) % 256, 120))
    image.putpixel((seed % size, 3), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _error(response: httpx.Response, status: int) -> str:
    """The one-line JSON error of a response that must have ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert message and "\n" not in message
    return message


# ---- the files -------------------------------------------------------------------------


def test_write_service_adds_the_service_files(folder: Path) -> None:
    for name in service.SERVICE_FILES:
        assert (folder / name).is_file(), name
    assert not list(folder.glob(".*.tmp"))


def test_write_service_refuses_a_folder_that_is_not_an_export(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.onnx, predict\.py missing.*mlsel export"):
        service.write_service(tmp_path)


def test_the_service_requirements_are_the_serve_extra() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = {
        re.split(r"[<>=!~\[ ]", req)[0]
        for req in config["project"]["optional-dependencies"]["serve"]
    }
    text = (ROOT / "trainers" / "service_template" / "requirements-service.txt").read_text()
    listed = {
        re.split(r"[<>=!~ ]", line)[0] for line in text.splitlines() if line and line[0] != "#"
    }
    assert listed == set(service.SERVICE_PACKAGES)
    assert listed <= extra
    package_data = config["tool"]["setuptools"]["package-data"]["mlsel.trainers"]
    assert "service_template/*" in package_data


def test_the_dockerfile_installs_both_requirements_and_runs_uvicorn(folder: Path) -> None:
    lines = [line.strip() for line in (folder / "Dockerfile").read_text().splitlines()]
    assert re.fullmatch(
        r"FROM python:3\.\d+-slim",
        lines[next(i for i, x in enumerate(lines) if x.startswith("FROM"))],
    )
    assert "RUN pip install --no-cache-dir -r requirements.txt -r requirements-service.txt" in lines
    assert "COPY requirements.txt requirements-service.txt ./" in lines
    assert lines[-1] == 'CMD ["uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000"]'


def test_app_imports_neither_mlsel_nor_torch(folder: Path) -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(folder)!r}); import app\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('mlsel', 'torch'))\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "none"


def test_a_bad_setting_is_one_line(app_module: ModuleType) -> None:
    with pytest.raises(app_module.SettingsError, match=r"^MAX_FILES must be a positive integer"):
        app_module.Settings.from_env({"MAX_FILES": "0"})
    assert app_module.Settings.from_env({"TOP_K": "5"}).top_k == 5


# ---- in process: FastAPI's TestClient ----------------------------------------------------


def test_health_readiness_metadata_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "model": "standin-0001"}
    meta = client.get("/metadata").json()
    assert meta["classes"] == CLASSES
    assert meta["image_size"] == 32
    assert meta["metrics"] == {"f1_macro": 0.5}
    assert meta["limits"] == {"max_upload_bytes": 200_000, "max_files": 4, "top_k": 3}
    assert client.get("/docs").status_code == 200
    body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    assert set(body["content"]) == {"multipart/form-data", "image/*", "application/octet-stream"}


def test_not_ready_before_the_model_is_loaded(app_module: ModuleType, folder: Path) -> None:
    cold = TestClient(app_module.create_app(app_module.Settings(model_dir=folder)))
    assert cold.get("/healthz").status_code == 200
    assert "not loaded" in _error(cold.get("/readyz"), 503)
    _error(cold.post("/predict", content=_png(1)), 503)


def test_predict_one_file_as_the_model_does(client: TestClient, folder: Path) -> None:
    response = client.post("/predict", files={"files": ("a.png", _png(1), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "standin-0001"
    (prediction,) = body["predictions"]
    assert prediction["filename"] == "a.png"
    with _imported_app(folder):
        from predict import Model

        expected = Model(folder).predict([_png(1)], top_k=3)[0]
    assert [p["label"] for p in prediction["top_k"]] == [p["label"] for p in expected]
    for got, want in zip(prediction["top_k"], expected, strict=True):
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-6)


def test_predict_many_files_raw_bytes_and_top_k(client: TestClient) -> None:
    files = [("files", (f"{i}.png", _png(i), "image/png")) for i in range(3)]
    files.append(("file", ("last.png", _png(9), "image/png")))
    many = client.post("/predict", files=files, params={"top_k": 2})
    assert many.status_code == 200, many.text
    predictions = many.json()["predictions"]
    assert [p["filename"] for p in predictions] == ["0.png", "1.png", "2.png", "last.png"]
    assert all(len(p["top_k"]) == 2 for p in predictions)
    raw = client.post("/predict", content=_png(2), headers={"content-type": "image/png"})
    assert raw.status_code == 200, raw.text
    assert raw.json()["predictions"][0]["filename"] is None
    assert raw.json()["predictions"][0]["top_k"][:2] == predictions[2]["top_k"]


def test_bad_input_in_process(client: TestClient) -> None:
    one = {"files": ("a.png", _png(1), "image/png")}
    assert "'notes.txt' is not a readable image" in _error(
        client.post("/predict", files={"files": ("notes.txt", b"hello", "text/plain")}), 415
    )
    _error(client.post("/predict", content=b"", headers={"content-type": "image/png"}), 400)
    _error(client.post("/predict", files={"files": ("empty.png", b"", "image/png")}), 400)
    _error(client.post("/predict", data={"files": "a.png"}, files={"other": ("x", b"x")}), 422)
    _error(client.post("/predict", files={"other": ("a.png", _png(1), "image/png")}), 400)
    _error(client.post("/predict", json={"image": "a.png"}), 415)
    _error(client.post("/predict", content=b"\0" * 200_001), 413)
    five = [("files", (f"{i}.png", _png(i), "image/png")) for i in range(5)]
    assert "too many files: 5" in _error(client.post("/predict", files=five), 413)
    for top_k in (0, 4, "two"):
        assert "top_k" in _error(client.post("/predict", files=one, params={"top_k": top_k}), 422)
    _error(client.get("/nowhere"), 404)
    _error(client.get("/predict"), 405)


def test_an_internal_fault_is_a_json_500(
    app_module: ModuleType, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_module.create_app(app_module.Settings(model_dir=folder))
    with TestClient(app, raise_server_exceptions=False) as started:

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the session broke")

        monkeypatch.setattr(app.state.service.model, "probabilities", broken)
        message = _error(started.post("/predict", content=_png(1)), 500)
    assert message == "internal error (RuntimeError); the service log has the details"


# ---- the prediction log ------------------------------------------------------------------


def _logged(folder: Path) -> list[dict]:
    """Every record of the spool ``folder``, file by file in name order."""
    records = []
    for path in sorted((folder / "pending").glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines()]
    return records


def test_the_prediction_log_setting(app_module: ModuleType, tmp_path: Path) -> None:
    assert app_module.Settings.from_env({}).prediction_log_dir is None
    given = app_module.Settings.from_env({"PREDICTION_LOG_DIR": str(tmp_path)})
    assert given.prediction_log_dir == tmp_path


def test_every_prediction_is_logged_once_the_service_stops(
    app_module: ModuleType, folder: Path, tmp_path: Path
) -> None:
    import hashlib

    spool = tmp_path / "spool"
    settings = app_module.Settings(model_dir=folder, prediction_log_dir=spool)
    seeds = [1, 2, 1, 3, 2, 1]  # 3 distinct images, 6 predictions
    answered = []
    with TestClient(app_module.create_app(settings)) as http:
        assert http.get("/metadata").json()["prediction_log"]["dir"] == str(spool)
        for i, seed in enumerate(seeds[:4]):
            response = http.post("/predict", files={"files": (f"{i}.png", _png(seed), "image/png")})
            answered += response.json()["predictions"]
        files = [("files", (f"{i}.png", _png(s), "image/png")) for i, s in enumerate(seeds[4:], 4)]
        answered += http.post("/predict", files=files, params={"top_k": 2}).json()["predictions"]
    records = _logged(spool)
    assert len(records) == len(seeds)
    assert len({r["prediction_id"] for r in records}) == len(seeds)
    assert [r["filename"] for r in records] == [f"{i}.png" for i in range(len(seeds))]
    for record, seed, served in zip(records, seeds, answered, strict=True):
        data = _png(seed)
        assert record["image_hash"] == hashlib.blake2b(data, digest_size=16).hexdigest()
        assert (spool / record["blob"]).read_bytes() == data
        assert record["top_k"] == served["top_k"]
        assert (record["label"], record["confidence"]) == tuple(served["top_k"][0].values())
        assert record["classes"] == CLASSES and len(record["probabilities"]) == len(CLASSES)
        assert sum(record["probabilities"]) == pytest.approx(1.0, abs=1e-5)
        assert record["model"] == "standin-0001" and record["predicted_at"]
    blobs = [p for p in (spool / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 3  # once per distinct upload
    assert not list(spool.rglob("*.tmp"))


def test_requests_do_not_wait_for_the_log_which_writes_in_batches(
    app_module: ModuleType, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    release = threading.Event()
    write = app_module.PredictionLog._write

    def held(self, batches, records):  # noqa: ANN001, ANN202
        release.wait(timeout=60)  # every request below is answered while the writer waits
        return write(self, batches, records)

    monkeypatch.setattr(app_module.PredictionLog, "_write", held)
    monkeypatch.setattr(app_module.PredictionLog, "BATCH_RECORDS", 4)
    monkeypatch.setattr(app_module.PredictionLog, "BATCH_SECONDS", 600.0)  # only size or stop
    spool = tmp_path / "spool"
    settings = app_module.Settings(model_dir=folder, prediction_log_dir=spool)
    with TestClient(app_module.create_app(settings)) as http:
        for seed in range(10):
            assert http.post("/predict", content=_png(seed)).status_code == 200
        assert not list((spool / "pending").glob("*.jsonl"))
        release.set()
    sizes = [
        len(path.read_text().splitlines()) for path in sorted((spool / "pending").glob("*.jsonl"))
    ]
    assert sizes == [4, 4, 2]  # two full batches, then the rest when the service stops


def test_a_disk_that_cannot_be_written_drops_the_log_not_the_requests(
    app_module: ModuleType,
    folder: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    settings = app_module.Settings(model_dir=folder, prediction_log_dir=blocked / "spool")
    app = app_module.create_app(settings)
    with caplog.at_level("WARNING", logger="uvicorn.error"), TestClient(app) as http:
        log = app.state.service.log
        for seed in range(5):
            assert http.post("/predict", content=_png(seed)).status_code == 200
        assert http.get("/metadata").json()["prediction_log"]["logged"] == 0
    assert (log.logged, log.dropped) == (0, 5)
    warnings = [r for r in caplog.records if "prediction log" in r.getMessage()]
    assert len(warnings) == 1 and "requests are still answered" in warnings[0].getMessage()


def test_a_full_disk_mid_way_drops_what_it_cannot_write(
    app_module: ModuleType, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    spool = tmp_path / "spool"
    app = app_module.create_app(app_module.Settings(model_dir=folder, prediction_log_dir=spool))
    with TestClient(app) as http:
        log = app.state.service.log
        writer = sys.modules[app_module.PredictionLog.__module__]  # the folder's prediction_log
        monkeypatch.setattr(writer, "_write_atomically", full)
        for seed in range(3):
            assert http.post("/predict", content=_png(seed)).status_code == 200
    assert (log.logged, log.dropped) == (0, 3)
    assert not _logged(spool) and not list(spool.rglob("*.tmp"))


# ---- real processes on 127.0.0.1 ---------------------------------------------------------


@pytest.mark.slow
def test_the_service_of_a_real_export_predicts_what_the_run_does(real) -> None:  # noqa: ANN001
    from mlsel.trainers.predictor import Predictor

    folder, run_dir, val = real
    expected = Predictor(run_dir).predict_proba(val)
    classes = json.loads((folder / "classes.json").read_text())
    with _imported_app(folder) as module, TestClient(module.app) as http:  # MODEL_DIR unset
        files = [("files", (path.name, path.read_bytes(), "image/png")) for path in val]
        response = http.post("/predict", files=files, params={"top_k": len(classes)})
    assert response.status_code == 200, response.text
    for prediction, row in zip(response.json()["predictions"], expected, strict=True):
        served = {item["label"]: item["probability"] for item in prediction["top_k"]}
        assert prediction["top_k"][0]["label"] == classes[int(row.argmax())]
        for label, probability in zip(classes, row, strict=True):
            assert served[label] == pytest.approx(float(probability), abs=1e-4)


@pytest.mark.slow
def test_a_real_uvicorn_process_answers_and_refuses_bad_input(real) -> None:  # noqa: ANN001
    folder, run_dir, val = real
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    image = val[0].read_bytes()
    limits = {"MAX_UPLOAD_BYTES": "200000", "MAX_FILES": "4", "TOP_K": "2"}
    with serving(command, port, folder, **limits) as url:  # the Dockerfile's CMD, in the folder
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            assert http.get("/healthz").json() == {"status": "ok"}
            meta = http.get("/metadata").json()
            assert meta["model"] == run_dir.name
            assert meta["classes"] == json.loads((folder / "classes.json").read_text())
            assert meta["image_size"] == 64 and "f1_macro" in meta["metrics"]
            assert http.get("/docs").status_code == 200
            one = http.post("/predict", files={"files": (val[0].name, image, "image/png")})
            assert one.status_code == 200, one.text
            assert len(one.json()["predictions"][0]["top_k"]) == 2  # TOP_K
            files = [("files", (p.name, p.read_bytes(), "image/png")) for p in val[:4]]
            many = http.post("/predict", files=files, params={"top_k": 3})
            assert [len(p["top_k"]) for p in many.json()["predictions"]] == [3] * len(files)
            raw = http.post(
                "/predict", content=image, headers={"content-type": "application/octet-stream"}
            )
            assert raw.json()["predictions"][0]["top_k"] == one.json()["predictions"][0]["top_k"]

            not_image = {"files": ("notes.txt", b"plain text", "text/plain")}
            assert "notes.txt" in _error(http.post("/predict", files=not_image), 415)
            truncated = http.post(
                "/predict", content=image[:40], headers={"content-type": "image/png"}
            )
            _error(truncated, 415)
            _error(http.post("/predict", content=b"", headers={"content-type": "image/png"}), 400)
            _error(http.post("/predict", content=b"\0" * 250_000), 413)

            def chunks() -> Iterator[bytes]:  # no Content-Length: the read size decides
                for _ in range(5):
                    yield b"\0" * 50_000

            _error(http.post("/predict", content=chunks()), 413)
            five = [("files", (f"{i}.png", image, "image/png")) for i in range(5)]
            assert "too many files" in _error(http.post("/predict", files=five), 413)
            _error(http.post("/predict", content=image, params={"top_k": 9}), 422)
            _error(http.post("/predict", content=image, params={"top_k": "x"}), 422)
            # still serving after every refusal
            assert http.post("/predict", content=image).status_code == 200


@pytest.mark.slow
def test_python_app_py_starts_uvicorn_itself(real, tmp_path: Path) -> None:  # noqa: ANN001
    folder, run_dir, val = real
    port = free_port()
    command = [sys.executable, str(folder / "app.py"), "--host", "127.0.0.1", "--port", str(port)]
    with serving(command, port, tmp_path) as url:  # from another folder: app.py finds its own
        response = httpx.post(f"{url}/predict", content=val[0].read_bytes(), timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == run_dir.name


@pytest.mark.slow
def test_the_folder_s_own_service_tests_pass(real) -> None:  # noqa: ANN001
    folder = real[0]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_service.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    tests = (folder / "test_service.py").read_text().count("\ndef test_")
    assert re.search(rf"\b{tests} passed\b", out.stdout), out.stdout
