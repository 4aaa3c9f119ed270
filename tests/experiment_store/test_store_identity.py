"""Run identity across tracker exports and homes, and the tracker formats found by header."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.experiment_store import Store
from mlsel.experiment_store._tracker import dataset_fingerprint, detect_csv_format, row_hash

QUICKTUNE = "data/quicktune-micro-runs-00.csv"
runner = CliRunner()


def _write(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    header = header or list(rows[0])
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _wandb_rows(n: int = 24) -> list[dict[str, str]]:
    """A W&B "Export CSV" of a runs table: Name, State, ..., ID, config keys, summary."""
    rows = []
    for i in range(n):
        rows.append(
            {
                "Name": f"run-{i}",
                "State": "crashed" if i % 7 == 3 else "finished",
                "Notes": "-",
                "User": "ana",
                "Tags": "",
                "Created": f"2024-05-01T10:{i:02d}:00.000Z",
                "Runtime": str(30 + i),
                "Sweep": "",
                "ID": f"id{i:04d}",
                "dataset": f"ds{i % 3}",
                "model": ("resnet18", "vit_tiny")[i % 2],
                "lr": f"{0.001 * (1 + i % 4):g}",
                "batch_size": "32",
                "num_classes": str(10 + i % 3),
                "eval_top1": "" if i % 7 == 3 else f"{40 + i}",
            }
        )
    return rows


def _count(store: Store) -> int:
    return int(store.sql("SELECT count(*) AS n FROM runs")["n"][0])


def test_slices_then_superset_store_each_run_once(tmp_path: Path) -> None:
    rows = _wandb_rows()
    store = Store.at(tmp_path / "s.duckdb")
    for k in range(4):
        part = _write(tmp_path / f"slice-{k}.csv", rows[k * 6 : (k + 1) * 6])
        assert store.import_tracker_csv(part).runs_added == 6
    whole = _write(tmp_path / "everything-later.csv", rows)
    report = store.import_tracker_csv(whole)
    assert (report.runs_added, report.runs_skipped, report.identity) == (0, 24, "ID")
    assert _count(store) == 24
    # more runs later: only the new ones are added
    more = _wandb_rows(30)
    assert store.import_tracker_csv(_write(tmp_path / "next-month.csv", more)).runs_added == 6
    assert _count(store) == 30


def test_same_run_under_two_file_names_is_one_run(tmp_path: Path) -> None:
    rows = _wandb_rows(5)
    store = Store.at(tmp_path / "s.duckdb")
    (tmp_path / "b").mkdir()
    first = store.import_tracker_csv(_write(tmp_path / "a.csv", rows))
    second = store.import_tracker_csv(_write(tmp_path / "b" / "runs (1).csv", rows))
    assert (first.runs_added, second.runs_added, second.runs_skipped) == (5, 0, 5)
    keys = store.sql("SELECT import_key FROM runs")["import_key"].to_list()
    assert all("a.csv" not in k and k.startswith("tracker:") for k in keys)


def test_wandb_without_id_by_name_with_prefixes_and_lower_state(tmp_path: Path) -> None:
    rows = _wandb_rows(6)
    renamed = [
        {
            "Name": r["Name"],
            "state": r["State"],
            "Created": r["Created"],
            "Runtime": r["Runtime"],
            "config.dataset": r["dataset"],
            "config.model": r["model"],
            "config.lr": r["lr"],
            "config.num_classes": r["num_classes"],
            "summary.eval_top1": r["eval_top1"],
            "summary.eval_loss": "1.5",
        }
        for r in rows
    ]
    path = _write(tmp_path / "wandb-api.csv", renamed)
    store = Store.at(tmp_path / "s.duckdb")
    report = store.import_tracker_csv(path)
    assert (report.format, report.identity, report.runs_added) == ("wandb", "Name", 6)
    assert report.by_status == {"completed": 5, "failed": 1}
    run = next(r for r in store.list_runs() if r.result.score is not None)
    assert run.config.arch in ("resnet18", "vit_tiny") and run.result.metrics == {"eval_loss": 1.5}
    assert run.config.extra == ()
    # the same runs exported with their IDs later are found by name: nothing doubles
    again = store.import_tracker_csv(_write(tmp_path / "with-ids.csv", rows))
    assert (again.runs_added, again.runs_skipped) == (0, 6)
    # a run that shares a name but has another ID is another run
    other = {**rows[0], "ID": "zzz999"}
    assert store.import_tracker_csv(_write(tmp_path / "other.csv", [other])).runs_added == 1
    assert _count(store) == 7


def test_no_id_no_name_is_a_row_hash(tmp_path: Path) -> None:
    rows = [
        {"dataset": "d", "model": "m", "acc": "0.5", "lr": "0.1"},
        {"dataset": "d", "model": "m", "acc": "0.7", "lr": "0.2"},
    ]
    store = Store.at(tmp_path / "s.duckdb")
    report = store.import_tracker_csv(_write(tmp_path / "t.csv", rows))
    assert (report.identity, report.runs_added, report.format) == ("row hash", 2, "tracker-csv")
    shifted = [
        {"lr": r["lr"], "model": r["model"], "acc": r["acc"], "dataset": r["dataset"], "note": ""}
        for r in rows
    ]
    again = store.import_tracker_csv(_write(tmp_path / "t2.csv", shifted))
    assert (again.runs_added, again.runs_skipped) == (0, 2)
    assert row_hash({"b": "2", "a": "1", "c": ""}) == row_hash({"a": "1", "b": "2"})
    scores = sorted(store.sql("SELECT score FROM runs")["score"].to_list())
    assert scores == [0.5, 0.7]  # values <= 1 are not percentages


def test_mlflow_search_runs_csv(tmp_path: Path) -> None:
    rows = [
        {
            "run_id": f"{i:032x}",
            "experiment_id": "7",
            "status": ("FINISHED", "FAILED", "RUNNING")[i % 3],
            "artifact_uri": f"file:///mlruns/7/{i:032x}/artifacts",
            "start_time": f"2024-06-01 12:00:0{i}.000000+00:00",
            "end_time": "" if i % 3 == 2 else f"2024-06-01 12:01:0{i}.500000+00:00",
            "metrics.val_accuracy": "" if i % 3 == 1 else f"0.{60 + i}",
            "params.dataset": "pets",
            "params.model": "resnet50",
            "params.learning_rate": "0.01",
            "params.epochs": "5",
            "tags.mlflow.runName": f"bold-fox-{i}",
            "tags.mlflow.user": "ana",
        }
        for i in range(6)
    ]
    path = _write(tmp_path / "search_runs.csv", rows)
    assert detect_csv_format(list(rows[0])) == "mlflow"
    store = Store.at(tmp_path / "s.duckdb")
    report = store.import_tracker_csv(path)
    assert (report.format, report.identity) == ("mlflow", "run_id")
    assert report.mapping["score"] == "metrics.val_accuracy" and report.mapping["scope"]
    assert report.runs_added == 4 and report.by_status == {"completed": 2, "failed": 2}
    assert report.rows_left_out == {"still running (a later export imports it)": 2}
    done = [r for r in store.list_runs() if r.status == "completed"]
    assert {r.result.score for r in done} == {0.6, 0.63}
    assert {r.result.wall_seconds for r in done} == {60.5}
    assert done[0].config.lr == 0.01 and done[0].config.epochs == 5


def test_mlflow_ui_csv(tmp_path: Path) -> None:
    header = "Start Time,Duration,Run ID,Name,Source Type,Source Name,User,Status,"
    header += "dataset,model,lr,accuracy,loss\n"
    body = (
        "2024-06-01 12:00:00,1.5min,aaa111,run-a,LOCAL,train.py,ana,FINISHED,"
        "pets,resnet18,0.1,81.5,0.4\n"
        "2024-06-01 12:05:00,12.0s,bbb222,run-b,LOCAL,train.py,ana,FAILED,pets,resnet18,0.2,,\n"
    )
    path = tmp_path / "runs.csv"
    path.write_text(header + body)
    store = Store.at(tmp_path / "s.duckdb")
    report = store.import_tracker_csv(path)
    assert (report.format, report.identity, report.runs_added) == ("mlflow-ui", "Run ID", 2)
    by_status = {r.status: r for r in store.list_runs()}
    done = by_status["completed"].result
    assert done.score == pytest.approx(0.815) and done.wall_seconds == 90.0
    assert done.metrics == {"loss": 0.4}
    assert by_status["failed"].result.score is None
    assert store.import_tracker_csv(path).runs_added == 0


def test_column_shifted_export_keeps_missing_as_missing(tmp_path: Path) -> None:
    rows = _wandb_rows(6)
    store = Store.at(tmp_path / "s.duckdb")
    store.import_tracker_csv(_write(tmp_path / "old.csv", rows[:3]))
    # the later export: columns reordered, `lr` and `num_classes` gone, a new metric added
    header = ["ID", "eval_top1", "model", "State", "eval_top5", "dataset", "Name", "batch_size"]
    later = [{**r, "eval_top5": "90"} for r in rows]
    report = store.import_tracker_csv(_write(tmp_path / "later.csv", later, header))
    assert (report.runs_added, report.runs_skipped, report.rows_failed) == (3, 3, 0)
    new = store.sql(
        "SELECT lr, batch_size, image_size, finetune, metrics, config FROM runs "
        "WHERE import_key LIKE '%id0005'"
    ).row(0, named=True)
    assert new["lr"] is None and new["batch_size"] == 32  # missing, never a default or 0
    assert new["image_size"] is None and new["finetune"] is None
    assert json.loads(new["metrics"]) == {"eval_top5": 90.0}
    assert "lr" not in json.loads(new["config"])
    # the class counts the old export gave are kept, none invented for the rest
    profile = store.get_profile(dataset_fingerprint("ds0"))
    assert profile is not None and profile.features == {"n_classes": 10.0}
    frame = store.training_frame()
    assert frame.filter(frame["cfg_lr"].is_null()).height == 3


def test_dry_run_writes_nothing(mlsel_home: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "w.csv", _wandb_rows(8))
    store = Store.open(mlsel_home)
    before = hashlib.sha1(store.path.read_bytes()).hexdigest()
    result = runner.invoke(app, ["store", "import", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "format wandb; a run is identified by ID" in result.output
    assert "Would import" in result.output and "would add 8 runs" in result.output
    assert "dataset" in result.output and "Nothing was written" in result.output
    assert hashlib.sha1(store.path.read_bytes()).hexdigest() == before
    data = json.loads(
        runner.invoke(app, ["store", "import", str(path), "--dry-run", "--json"]).output
    )
    assert data["dry_run"] and data["runs_added"] == 8 and data["mapping"]["identity"] == "ID"
    assert runner.invoke(app, ["store", "import", str(path)]).exit_code == 0
    again = runner.invoke(app, ["store", "import", str(path), "--dry-run"])
    assert "would add 0 runs" in again.output and "skipped 8 already" in again.output
    fresh = tmp_path / "fresh-home"
    empty = runner.invoke(app, ["--home", str(fresh), "store", "import", str(path), "--dry-run"])
    assert empty.exit_code == 0 and "would add 8 runs" in empty.output
    assert not fresh.exists()  # no store was created for a dry run


def test_mlsel_parquet_between_homes_does_not_duplicate(tmp_path: Path) -> None:
    rows = _wandb_rows(6)
    a, b = Store.at(tmp_path / "a.duckdb"), Store.at(tmp_path / "b.duckdb")
    a.import_tracker_csv(_write(tmp_path / "w.csv", rows))
    a.export_parquet(tmp_path / "a.parquet")
    dry = b.import_file(tmp_path / "a.parquet", dry_run=True)
    assert dry.runs_added == 6 and _count(b) == 0
    assert b.import_file(tmp_path / "a.parquet").runs_added == 6
    assert b.import_file(tmp_path / "a.parquet").runs_added == 0
    b.export_parquet(tmp_path / "b.parquet")
    assert a.import_file(tmp_path / "b.parquet").runs_added == 0
    # B knows the runs by every identity: the tracker export, even by name only, adds none
    by_name = [{k: v for k, v in r.items() if k != "ID"} for r in rows]
    assert b.import_tracker_csv(_write(tmp_path / "names.csv", by_name)).runs_added == 0
    # a home that imported the runs by name only still matches A's export by their keys
    c = Store.at(tmp_path / "c.duckdb")
    c.import_tracker_csv(tmp_path / "names.csv")
    assert c.import_file(tmp_path / "a.parquet").runs_added == 0
    assert _count(a) == _count(b) == _count(c) == 6


def test_old_keys_are_found_after_the_upgrade(tmp_path: Path) -> None:
    """A store of schema 2 with runs imported under `tracker-csv:<file>:<id>` keys."""
    from mlsel.experiment_store._schema import migrate

    rows = _wandb_rows(4)
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.begin()
    migrate(con, target=2)
    for r in rows[:3]:
        con.execute(
            "INSERT INTO runs (run_id, dataset, source, status, config, config_key, arch, "
            "import_key) VALUES (?, 'fp', 'imported', 'completed', '{}', 'k', 'm', ?)",
            [r["ID"], f"tracker-csv:export.csv:{r['ID']}"],
        )
    con.commit()
    con.close()
    store = Store.at(path)  # migrates to the current schema
    report = store.import_tracker_csv(_write(tmp_path / "renamed.csv", rows))
    assert (report.runs_added, report.runs_skipped) == (1, 3)
    assert store.import_tracker_csv(_write(tmp_path / "export.csv", rows)).runs_added == 0


def test_real_log_auto_detected_reimport_and_slices(shared_dir: Path, tmp_path: Path) -> None:
    path = shared_dir / QUICKTUNE
    if not path.is_file():
        pytest.skip(f"{QUICKTUNE} is not in ../shared")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    store = Store.at(tmp_path / "s.duckdb")
    assert len(rows) == 1000
    first = store.import_any(path)
    assert (first.format, first.identity, first.runs_added) == ("wandb", "ID", 1000)
    assert store.import_any(path).runs_added == 0
    sliced = Store.at(tmp_path / "sliced.duckdb")
    for k in range(4):
        part = _write(tmp_path / f"part{k}.csv", rows[k * 250 : (k + 1) * 250], header)
        sliced.import_tracker_csv(part)
    assert sliced.import_tracker_csv(path).runs_added == 0
    assert _count(sliced) == _count(store) == 1000
