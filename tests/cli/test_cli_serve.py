"""`mlsel serve`: a run is exported once to the home and served from there, an export
folder is served as it is, and a real `mlsel serve` process answers on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.trainers import service
from tests.served import free_port, serving
from tests.trained_probe import trained_probe
from tests.trainers._service_export import write_export

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path) -> tuple[Path, str, Path]:
    """``(home, run id, run folder)`` of a real linear-probe run."""
    root = tmp_path_factory.mktemp("serve")
    with trained_probe(root, _session_cache) as probe:
        return probe.home, probe.run_id, probe.run_dir


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """uvicorn.run replaced by a recorder: what `mlsel serve` would have run."""
    import uvicorn

    calls: list[dict[str, Any]] = []

    def record(target: str, **kwargs: Any) -> None:
        calls.append({"target": target, "model_dir": os.environ.get("MODEL_DIR"), **kwargs})

    monkeypatch.setattr(uvicorn, "run", record)
    monkeypatch.setenv("MODEL_DIR", "unset")  # the command sets it; restored after the test
    return calls


def test_a_run_is_exported_once_with_its_service_then_reused(
    run: tuple[Path, str, Path], started: list[dict[str, Any]]
) -> None:
    home, run_id, _ = run
    first = runner.invoke(app, ["--home", str(home), "serve", run_id, "--port", "8765"])
    assert first.exit_code == 0, first.output
    folder = home / "exports" / run_id
    assert f"exported run {run_id} to {folder}" in " ".join(first.output.split())
    for name in ("model.onnx", "predict.py", "metadata.json", *service.SERVICE_FILES):
        assert (folder / name).is_file(), name
    assert started == [
        {
            "target": "app:app",
            "model_dir": str(folder),
            "app_dir": str(folder),
            "host": "127.0.0.1",
            "port": 8765,
            "workers": 1,
        }
    ]
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    again = runner.invoke(
        app, ["--home", str(home), "serve", run_id, "--workers", "2", "--host", "0.0.0.0"]
    )
    assert again.exit_code == 0, again.output
    assert "reused the export" in again.output
    assert (folder / "model.onnx").stat().st_mtime_ns == stamp
    assert started[1]["workers"] == 2 and started[1]["host"] == "0.0.0.0"


def test_an_export_folder_without_the_service_gets_it(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    folder = write_export(tmp_path / "exported")
    result = runner.invoke(app, ["serve", str(folder)])
    assert result.exit_code == 0, result.output
    assert "added the REST service" in result.output
    assert (folder / "app.py").is_file() and (folder / "Dockerfile").is_file()
    assert started[0]["app_dir"] == str(folder.resolve())


def test_a_missing_serve_extra_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    monkeypatch.setattr(service, "missing_service_packages", lambda: ["fastapi", "uvicorn"])
    result = runner.invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 2
    assert "pip install 'mlsel[serve]'" in result.output
    assert "fastapi, uvicorn" in result.output
    assert "Traceback" not in result.output and not started


def test_bad_options_and_a_taken_port_are_one_line(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    folder = write_export(tmp_path / "exported")
    for args, text in (
        (["--port", "0"], "'port' parameter of serve"),
        (["--workers", "0"], "'workers' parameter of serve"),
    ):
        result = runner.invoke(app, ["serve", str(folder), *args])
        assert result.exit_code == 2 and text in result.output, result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", str(folder), "--port", str(port)])
    assert result.exit_code == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in result.output
    unknown = runner.invoke(app, ["serve", "no-such-model"])
    assert unknown.exit_code == 2 and "No model named 'no-such-model'" in unknown.output
    assert not started


@pytest.mark.slow
def test_a_real_mlsel_serve_process_answers(tmp_path: Path) -> None:
    folder = write_export(tmp_path / "exported")
    port = free_port()
    mlsel = Path(sys.executable).with_name("mlsel")
    with serving([str(mlsel), "serve", str(folder), "--port", str(port)], port) as url:
        with httpx.Client(base_url=url, timeout=10.0) as http:
            assert http.get("/metadata").json()["model"] == "standin-0001"
            error = http.post("/predict", content=b"not an image")
            assert error.status_code == 415 and "error" in error.json()


def test_serve_log_spools_for_the_model_and_brings_it_in_when_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import uvicorn

    from mlsel.experiment_store.store import Store

    home = tmp_path / "home"
    folder = write_export(tmp_path / "exported")
    spool = home / "predictions" / "standin-0001"
    seen: list[str | None] = []

    def serve_and_log(target: str, **kwargs: Any) -> None:  # what the service would write
        seen.append(os.environ.get("PREDICTION_LOG_DIR"))
        record = {
            "prediction_id": "a" * 32,
            "image_hash": "b" * 32,
            "filename": "x.png",
            "label": "cat",
            "confidence": 0.5,
            "top_k": [{"label": "cat", "probability": 0.5}],
            "model": "standin-0001",
            "blob": None,
        }
        (spool / "pending" / "1-x-000001.jsonl").write_text(json.dumps(record) + "\n")

    monkeypatch.setattr(uvicorn, "run", serve_and_log)
    for name in ("MODEL_DIR", "PREDICTION_LOG_DIR"):  # the command sets them; restored after
        monkeypatch.setenv(name, "unset")
    result = runner.invoke(app, ["--home", str(home), "serve", str(folder), "--log"])
    assert result.exit_code == 0, result.output
    assert seen == [str(spool)]
    assert json.loads((spool / "model.json").read_text()) == {
        "model": "standin-0001",
        "model_version": None,
        "run_id": None,
    }
    assert "logged 1 predictions of standin-0001" in result.stderr
    frame = Store.open(home).predictions_frame("standin-0001")
    assert frame["prediction_id"].to_list() == ["a" * 32]
    assert not list((spool / "pending").iterdir())


@pytest.mark.slow
def test_a_real_mlsel_serve_log_process_logs_every_prediction(tmp_path: Path) -> None:
    import hashlib
    import io

    from PIL import Image

    from mlsel.experiment_store.store import Store

    home = tmp_path / "home"
    folder = write_export(tmp_path / "exported")
    port = free_port()
    mlsel = Path(sys.executable).with_name("mlsel")
    images = []
    for seed in range(3):
        out = io.BytesIO()
        Image.new("RGB", (40, 40), (seed * 80, 30, 200 - seed * 50)).save(out, format="PNG")
        images.append(out.getvalue())
    command = [str(mlsel), "--home", str(home), "serve", str(folder), "--port", str(port), "--log"]
    with serving(command, port) as url:
        with httpx.Client(base_url=url, timeout=10.0) as http:
            for image in [*images, images[0]]:
                assert http.post("/predict", content=image).status_code == 200
            files = [("files", (f"{i}.png", image, "image/png")) for i, image in enumerate(images)]
            assert http.post("/predict", files=files).status_code == 200
            assert http.get("/metadata").json()["prediction_log"]["dropped"] == 0
    # stopped (SIGTERM): the service flushed its queue, `mlsel serve` brought it in
    frame = Store.open(home).predictions_frame("standin-0001")
    assert frame.height == 7
    assert set(frame["source"].to_list()) == {"serve"}
    digests = {hashlib.blake2b(image, digest_size=16).hexdigest() for image in images}
    assert set(frame["image_hash"].to_list()) == digests
    for row in frame.iter_rows(named=True):
        assert (
            hashlib.blake2b(Path(row["blob"]).read_bytes(), digest_size=16).hexdigest()
            == (row["image_hash"])
        )
    spool = home / "predictions" / "standin-0001"
    assert not list((spool / "pending").iterdir())
    assert len([p for p in (spool / "blobs").rglob("*") if p.is_file()]) == len(images)
