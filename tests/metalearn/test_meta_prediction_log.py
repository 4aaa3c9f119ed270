"""The prediction log's way into the store: a service's spool brought in once however
often it is read, a corrupt line skipped, every spool of a home, the ingester beside a
service, and `mlsel predict --log` (hashes of the files' bytes, full probabilities)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.experiment_store.store import Store
from mlsel.metalearn.prediction_log import (
    SpoolIngester,
    SpoolModel,
    export_identity,
    ingest_all,
    ingest_spool,
    logged_model,
    model_key,
    spool_folder,
    write_spool_model,
)
from tests.trainers._service_export import CLASSES, write_export

runner = CliRunner()


def _record(seed: int, **fields: Any) -> dict[str, Any]:
    """A record as the service's PredictionLog writes it."""
    digest = hashlib.blake2b(bytes([seed]) * 8, digest_size=16).hexdigest()
    probabilities = [0.7, 0.2, 0.1]
    return {
        "prediction_id": uuid.UUID(int=seed + 1).hex,
        "image_hash": digest,
        "filename": f"{seed}.png",
        "label": "cat",
        "confidence": 0.7,
        "top_k": [{"label": "cat", "probability": 0.7}, {"label": "dog", "probability": 0.2}],
        "probabilities": probabilities,
        "classes": CLASSES,
        "model": "export-model-id",
        "predicted_at": "2025-01-02T03:04:05.123456",
        "blob": f"blobs/{digest[:2]}/{digest}",
        **fields,
    }


def _pending(spool: Path, name: str, lines: list[str]) -> Path:
    path = spool / "pending" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_spool_file_is_brought_in_once_and_deleted(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "home")
    spool = tmp_path / "spool"
    write_spool_model(spool, SpoolModel("cats", 3, "run-1"))
    path = _pending(spool, "1-ab-000001.jsonl", [json.dumps(_record(i)) for i in range(4)])
    kept = path.read_text()
    assert ingest_spool(store, spool) == 4
    assert not path.exists()
    path.write_text(kept)  # a crash between the insert and the delete: read again
    assert ingest_spool(store, spool) == 0
    assert not path.exists()
    frame = store.predictions_frame("cats")
    assert frame.height == 4
    row = frame.row(0, named=True)
    assert (row["model"], row["model_version"], row["run_id"]) == ("cats", 3, "run-1")
    assert row["source"] == "serve" and row["path"] is None
    record = _record(0)
    assert row["blob"] == str((spool / record["blob"]).resolve())
    assert row["image_hash"] == record["image_hash"]
    assert row["probabilities"] == pytest.approx(record["probabilities"])
    assert row["classes"] == CLASSES
    assert json.loads(row["top_k"]) == [["cat", 0.7], ["dog", 0.2]]
    assert str(row["predicted_at"]).startswith("2025-01-02 03:04:05")


def test_a_corrupt_line_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.open(tmp_path / "home")
    spool = tmp_path / "spool"  # no model.json: a service run without mlsel
    broken = _record(2)
    del broken["label"]
    lines = [json.dumps(_record(0)), '{"prediction_id": "trunc', json.dumps(broken), ""]
    lines.append(json.dumps(_record(1)))
    path = _pending(spool, "1-ab-000001.jsonl", lines)
    with path.open("ab") as out:
        out.write(b"\xff\xfe not text\n")
    with caplog.at_level(logging.WARNING, logger="mlsel.metalearn.prediction_log"):
        assert ingest_spool(store, spool) == 2
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 3
    assert skipped[0].startswith("skipped line 2 of") and "line 3 of" in skipped[1]
    assert "line 6 of" in skipped[2]
    frame = store.predictions_frame()
    assert sorted(frame["model"].to_list()) == ["export-model-id"] * 2  # the records' own
    assert frame["model_version"].to_list() == [None, None]
    assert not list((spool / "pending").iterdir())


def test_every_spool_of_the_home_is_brought_in(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store.open(home)
    assert ingest_all(store, home) == 0  # no spool yet
    for n, (name, version) in enumerate((("cats", 1), ("dogs", None))):
        spool = spool_folder(home, name, version)
        write_spool_model(spool, SpoolModel(name, version))
        records = [json.dumps(_record(10 * n + i)) for i in range(3)]
        _pending(spool, "9-cd-000001.jsonl", records[:2])
        _pending(spool, "9-cd-000002.jsonl", records[2:])
    assert sorted(p.name for p in (home / "predictions").iterdir()) == ["cats@v1", "dogs"]
    assert ingest_all(store, home) == 6
    assert store.predictions_frame("cats", 1).height == 3
    assert store.predictions_frame("dogs").height == 3


def test_the_ingester_brings_in_what_the_service_flushed_as_it_stopped(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "home")
    spool = tmp_path / "spool"
    write_spool_model(spool, SpoolModel("cats", 1))
    with SpoolIngester(store, spool, interval=3600.0) as ingester:  # only the last ingest
        _pending(spool, "1-ab-000001.jsonl", [json.dumps(_record(i)) for i in range(5)])
    assert ingester.ingested == 5
    assert store.predictions_frame("cats").height == 5


def test_whom_predictions_are_logged_for(tmp_path: Path) -> None:
    assert logged_model("run-9", registry_name="cats", registry_version=2, run_id="run-9") == (
        SpoolModel("cats", 2, "run-9")
    )
    assert logged_model("run-9", run_id="run-9") == SpoolModel("run-9", None, "run-9")
    assert model_key("cats", 2) == "cats@v2" and model_key("run-9", None) == "run-9"
    folder = write_export(tmp_path / "export")
    assert export_identity(folder) == ("standin-0001", None)
    assert export_identity(tmp_path / "nothing") == ("nothing", None)


def _png(seed: int, size: int = 40) -> bytes:
    image = Image.new("RGB", (size, size), ((seed * 53) % 256, (seed * 97) % 256, 120))
    image.putpixel((seed % size, 3), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_mlsel_predict_log_records_every_prediction(mlsel_home: Path, tmp_path: Path) -> None:
    folder = write_export(tmp_path / "export")
    images = tmp_path / "images"
    images.mkdir()
    for seed in range(5):
        (images / f"{seed}.png").write_bytes(_png(seed))
    (images / "2b-broken.png").write_bytes(b"not an image")  # skipped, between two good ones
    shutil.copy(images / "0.png", images / "0-again.png")  # the same bytes twice
    args = ["predict", str(folder), str(images), "--top-k", "2", "--json", "--log"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output  # one file skipped, the others logged
    assert "logged 6 predictions of standin-0001" in result.stderr
    printed = json.loads(result.stdout)
    assert len(printed) == 6 and all("probabilities" not in row for row in printed)

    frame = Store.open(mlsel_home).predictions_frame("standin-0001")
    assert frame.height == 6
    by_path = {row["path"]: row for row in frame.iter_rows(named=True)}
    for shown in printed:
        path = Path(shown["path"]).resolve()
        row = by_path[str(path)]
        assert row["image_hash"] == hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
        assert (row["label"], row["confidence"]) == (shown["label"], shown["probability"])
        assert row["classes"] == CLASSES and len(row["probabilities"]) == len(CLASSES)
        best = max(range(len(CLASSES)), key=lambda i: row["probabilities"][i])
        assert CLASSES[best] == shown["label"]
        assert row["probabilities"][best] == pytest.approx(shown["probability"])
        assert json.loads(row["top_k"]) == [[t["label"], t["probability"]] for t in shown["top_k"]]
        assert (row["source"], row["run_id"], row["model_version"]) == ("predict", None, None)
    assert (
        by_path[str((images / "0.png").resolve())]["image_hash"]
        == (by_path[str((images / "0-again.png").resolve())]["image_hash"])
    )
    assert len(set(frame["prediction_id"].to_list())) == 6


def test_mlsel_predict_without_log_records_nothing(mlsel_home: Path, tmp_path: Path) -> None:
    folder = write_export(tmp_path / "export")
    image = tmp_path / "a.png"
    image.write_bytes(_png(1))
    result = runner.invoke(app, ["predict", str(folder), str(image), "--json"])
    assert result.exit_code == 0, result.output
    assert "logged" not in result.stderr
    assert Store.open(mlsel_home).predictions_frame().height == 0
