"""`mlsel runs` and `mlsel store export/import/info` through the real root app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.experiment_store import Store
from mlsel.kernel import Config, DatasetProfile, EpochRecord, RunResult

runner = CliRunner()


@pytest.fixture
def filled(mlsel_home: Path) -> dict[str, str]:
    store = Store.open()
    store.save_profile(
        DatasetProfile("fp-digits-1234", "classify", {"n_classes": 10.0}, "p1", name="digits")
    )
    cfg = Config("torchvision", "mobilenet_v3_small", epochs=3)
    curve = (EpochRecord(0, score=0.5), EpochRecord(1, score=0.7))
    return {
        "ok": store.log_run(
            "fp-digits-1234", cfg, RunResult("completed", 0.875, curve=curve, wall_seconds=12.5)
        ),
        "bad": store.log_run(
            "fp-other",
            cfg.with_(arch="resnet50"),
            RunResult("failed", error="OOM"),
            source="bundled",
        ),
    }


def test_runs_table(filled: dict[str, str]) -> None:
    result = runner.invoke(app, ["runs"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert filled["ok"] in result.output and filled["bad"] in result.output
    assert "digits" in result.output and "0.8750" in result.output and "2/3" in result.output
    assert "12.5" in result.output


def test_runs_json_and_filters(filled: dict[str, str]) -> None:
    result = runner.invoke(app, ["runs", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["run_id"] for r in rows} == set(filled.values())
    ok = next(r for r in rows if r["run_id"] == filled["ok"])
    assert (ok["dataset_name"], ok["score"], ok["epochs_logged"]) == ("digits", 0.875, 2)
    assert ok["config"]["arch"] == "mobilenet_v3_small"
    for args, expected in [
        (["--dataset", "digits"], [filled["ok"]]),
        (["--dataset", "fp-digits-1234"], [filled["ok"]]),
        (["--status", "failed"], [filled["bad"]]),
        (["--source", "bundled"], [filled["bad"]]),
        (["--limit", "1"], None),
    ]:
        out = runner.invoke(app, ["runs", "--json", *args])
        assert out.exit_code == 0, out.output
        ids = [r["run_id"] for r in json.loads(out.output)]
        assert ids == expected if expected is not None else len(ids) == 1


def test_runs_bad_status_is_one_line(filled: dict[str, str]) -> None:
    result = runner.invoke(app, ["runs", "--status", "done"])
    assert result.exit_code == 2
    assert "Got 'done' instead" in result.output and "Traceback" not in result.output


def test_runs_empty_store(mlsel_home: Path) -> None:
    result = runner.invoke(app, ["runs"])
    assert result.exit_code == 0 and "No runs logged yet" in result.output


def test_store_export_import_info(filled: dict[str, str], tmp_path: Path) -> None:
    out_file = tmp_path / "all.parquet"
    result = runner.invoke(app, ["store", "export", str(out_file)])
    assert result.exit_code == 0, result.output
    assert out_file.is_file() and "Exported 2 runs" in result.output

    other_home = tmp_path / "other-home"
    imported = runner.invoke(
        app, ["--home", str(other_home), "store", "import", str(out_file), "--json"]
    )
    assert imported.exit_code == 0, imported.output
    report = json.loads(imported.output)
    assert (report["runs_added"], report["runs_skipped"], report["format"]) == (2, 0, "mlsel")
    again = runner.invoke(app, ["--home", str(other_home), "store", "import", str(out_file)])
    assert again.exit_code == 0 and "added 0 runs" in again.output
    assert "skipped 2" in again.output

    info = runner.invoke(app, ["--home", str(other_home), "store", "info", "--json"])
    data = json.loads(info.output)
    assert data["runs"] == 2 and data["schema_version"] == 4
    assert data["runs_by_source"] == {"bundled": 1, "imported": 1}
    assert data["runs_by_status"] == {"completed": 1, "failed": 1}
    assert data["size_bytes"] > 0
    text = runner.invoke(app, ["--home", str(other_home), "store", "info"])
    assert text.exit_code == 0 and "schema version" in text.output


def test_store_import_tracker_csv_options(mlsel_home: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "mlflow.csv"
    csv_file.write_text(
        "run,status,data,net,top1,lr\n"
        "a,FINISHED,pets,resnet18,80,0.1\n"
        "b,FAILED,pets,resnet18,,0.2\n"
    )
    args = [
        "store",
        "import",
        str(csv_file),
        "--run-id-col",
        "run",
        "--status-col",
        "status",
        "--dataset-col",
        "data",
        "--arch-col",
        "net",
        "--score-col",
        "top1",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "added 2 runs (1 completed, 1 failed)" in result.output
    rows = json.loads(runner.invoke(app, ["runs", "--json"]).output)
    assert sorted((r["status"], r["score"]) for r in rows) == [("completed", 0.8), ("failed", None)]
    assert {r["config"]["lr"] for r in rows} == {0.1, 0.2}
    fresh = ["--home", str(tmp_path / "h2")]
    scaled = runner.invoke(app, [*fresh, *args, "--score-scale", "0.001", "--backend", "timm"])
    assert scaled.exit_code == 0, scaled.output
    rows = json.loads(
        runner.invoke(app, [*fresh, "runs", "--json", "--status", "completed"]).output
    )
    assert [(r["score"], r["backend"]) for r in rows] == [(0.08, "timm")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["store", "import", "/no/such/file.parquet"], "No file /no/such/file.parquet"),
        (["store", "import", "{csv}", "--score-col", "nope"], "score column 'nope' is not in"),
        (["store", "import", "{csv}", "--format", "mlsel"], "not a Parquet file"),
        (["store", "import", "{csv}", "--format", "xml"], "--format option must be one of"),
        (["store", "import", "{parquet}", "--score-col", "x"], "only applies to a tracker CSV"),
    ],
)
def test_store_errors_are_one_red_line(mlsel_home: Path, tmp_path: Path, args, message) -> None:
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("ID,State,dataset,model,eval_top1\n1,finished,d,m,5\n")
    parquet = tmp_path / "x.parquet"
    Store.open().export_parquet(parquet)
    args = [a.format(csv=csv_file, parquet=parquet) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3  # one (soft-wrapped) line


def test_cli_import_stays_light() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mlsel.cli.app import app\n"
        "assert CliRunner().invoke(app, ['runs', '--help']).exit_code == 0\n"
        "print(','.join(m for m in ('torch', 'duckdb', 'polars', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
