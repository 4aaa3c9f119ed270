"""Parquet export/import round trip and experiment-tracker CSV import."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from mlsel.experiment_store import Store, TrackerMapping
from mlsel.experiment_store._tracker import dataset_fingerprint, parse_value
from mlsel.kernel import (
    Config,
    ConfigError,
    DatasetProfile,
    EpochRecord,
    RunResult,
    StoreError,
    StoreFormatError,
)

QUICKTUNE = "data/quicktune-micro-runs-00.csv"


def _filled_store(path: Path) -> Store:
    store = Store.at(path)
    store.save_profile(
        DatasetProfile(
            "fp-a",
            "classify",
            {"n_classes": 3.0, "x": 0.5},
            "p1",
            name="a",
            path="/d/a",
            warnings=("tiny class 'c'",),
        )
    )
    store.save_profile(DatasetProfile("fp-a", "classify", {"n_classes": 3.0}, "p0", name="a"))
    cfg = Config("torchvision", "resnet18", extra=(("mixup", 0.2), ("tag", "x")))
    curve = (EpochRecord(0, 1.0, 0.9, 0.3, 1.5), EpochRecord(1, 0.8, 0.7, 0.5, 1.4))
    store.log_run(
        "fp-a",
        cfg,
        RunResult(
            "completed",
            0.5,
            metrics={"acc": 0.6},
            confusion=((2, 1), (0, 3)),
            curve=curve,
            hardware={"device": "cpu"},
            versions={"torch": "2"},
        ),
    )
    store.log_run(
        "fp-a", cfg.with_(lr=0.1), RunResult("failed", error="diverged"), source="bundled"
    )
    running = store.start_run("fp-b", cfg.with_(arch="vgg11"))
    store.log_epoch(running, EpochRecord(0, score=0.1))
    return store


def test_export_import_round_trip_is_equal_and_idempotent(tmp_path: Path) -> None:
    source = _filled_store(tmp_path / "a.duckdb")
    target_file = tmp_path / "runs.parquet"
    counts = source.export_parquet(target_file)
    assert counts == {"dataset": 2, "profile": 2, "feature": 3, "run": 3, "epoch": 3}
    kinds = duckdb.sql(f"SELECT kind, count(*) FROM '{target_file}' GROUP BY 1").fetchall()
    assert dict(kinds) == {"dataset": 2, "profile": 2, "feature": 3, "run": 3, "epoch": 3}

    target = Store.at(tmp_path / "b.duckdb")
    report = target.import_file(target_file)
    assert (
        report.runs_added,
        report.runs_skipped,
        report.datasets_added,
        report.profiles_added,
    ) == (3, 0, 2, 2)
    assert report.by_status == {"completed": 1, "failed": 1, "interrupted": 1}
    by_id = {r.run_id: r for r in target.list_runs()}
    for original in source.list_runs():
        copy = by_id[original.run_id]
        expected_source = "bundled" if original.source == "bundled" else "imported"
        assert copy.source == expected_source
        if original.status == "running":  # cannot still be running elsewhere
            assert copy.status == "interrupted"
            assert copy.result.curve == original.result.curve
            continue
        assert replace(copy, source=original.source) == original
    for version in ("p0", "p1"):
        assert target.get_profile("fp-a", version) == source.get_profile("fp-a", version)

    again = target.import_file(target_file)
    assert (again.runs_added, again.runs_skipped, again.datasets_added) == (0, 3, 0)
    assert len(target.list_runs()) == 3
    assert target.sql("SELECT count(*) AS n FROM epochs")["n"].to_list() == [3]


def test_an_export_can_leave_datasets_out_with_everything_of_theirs(tmp_path: Path) -> None:
    source = _filled_store(tmp_path / "a.duckdb")
    counts = source.export_parquet(tmp_path / "runs.parquet", exclude_datasets=["fp-a"])
    # fp-b has no profile: its dataset row, its running run and that run's epoch
    assert counts == {"dataset": 1, "profile": 0, "feature": 0, "run": 1, "epoch": 1}
    target = Store.at(tmp_path / "b.duckdb")
    target.import_file(tmp_path / "runs.parquet")
    assert {r.dataset for r in target.list_runs()} == {"fp-b"}
    assert target.get_profile("fp-a", "p1") is None


def test_import_refuses_files_that_are_not_exports(tmp_path: Path) -> None:
    store = Store.at(tmp_path / "s.duckdb")
    with pytest.raises(StoreError, match="No file"):
        store.import_file(tmp_path / "missing.parquet")
    text = tmp_path / "notes.parquet"
    text.write_text("hello")
    with pytest.raises(StoreFormatError, match="not a Parquet file"):
        store.import_file(text)
    other = tmp_path / "other.parquet"
    duckdb.sql(f"COPY (SELECT 1 AS a) TO '{other}' (FORMAT parquet)")
    with pytest.raises(StoreFormatError, match="not an mlsel export"):
        store.import_file(other)


def test_parse_value() -> None:
    assert [parse_value(v) for v in ("", "true", "False", "32", "0.5", "1e-6", "[0,0.99]")] == [
        None,
        True,
        False,
        32,
        0.5,
        1e-6,
        "[0,0.99]",
    ]


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_tracker_csv_mapping_of_a_small_file(tmp_path: Path) -> None:
    base = {
        "ID": "",
        "State": "finished",
        "dataset": "cifar",
        "model": "resnet50",
        "lr": "0.01",
        "batch_size": "64",
        "opt": "sgd",
        "sched": "cosine",
        "smoothing": "0.1",
        "mixup": "0.2",
        "amp": "true",
        "num_classes": "10",
        "acc": "",
        "train_time": "2.5",
        "Runtime": "120",
    }
    rows = [
        {**base, "ID": "r1", "acc": "91.5", "mixup": "0.4"},
        {**base, "ID": "r2", "acc": "", "State": "crashed"},  # never reported: failed
        {**base, "ID": "r3", "acc": "50", "State": "crashed"},  # reported, then crashed
        {**base, "ID": "r4", "acc": "oops"},  # unreadable score
    ]
    path = _write_csv(tmp_path / "wandb.csv", rows)
    mapping = TrackerMapping(score_col="acc", backend="timm")
    store = Store.at(tmp_path / "s.duckdb")
    report = store.import_tracker_csv(path, mapping)
    assert (report.runs_added, report.rows_failed, report.datasets_added) == (3, 1, 1)
    assert report.by_status == {"completed": 1, "failed": 2}
    assert "line 5" in report.problems[0]
    runs = {r.import_key.rsplit(":", 1)[1]: r for r in store.list_runs()}
    good = runs["r1"]
    assert good.status == "completed" and good.result.score == pytest.approx(0.915)
    assert good.config == Config(
        backend="timm",
        arch="resnet50",
        pretrained="imagenet",
        lr=0.01,
        batch_size=64,
        optimizer="sgd",
        schedule="cosine",
        label_smoothing=0.1,
        extra=(("mixup", 0.4),),
    )
    assert good.result.seconds_per_epoch == 2.5 and good.result.wall_seconds == 120.0
    assert good.source == "imported"
    assert runs["r2"].status == "failed" and runs["r2"].result.score is None
    assert "never reported acc" in runs["r2"].result.error
    assert runs["r3"].status == "failed" and runs["r3"].result.score == pytest.approx(0.5)
    profile = store.get_profile(dataset_fingerprint("cifar"))
    assert profile is not None and profile.profiler_version == "imported"
    assert profile.features == {"n_classes": 10.0} and profile.name == "cifar"
    assert store.import_tracker_csv(path, mapping).runs_skipped == 3


def test_tracker_csv_missing_column_is_a_config_error(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "t.csv",
        [
            {
                "ID": "1",
                "State": "finished",
                "dataset": "d",
                "model": "m",
                "eval_top1": "5",
                "acc1": "3",
            }
        ],
    )
    store = Store.at(tmp_path / "s.duckdb")
    with pytest.raises(ConfigError, match="score column 'acc' is not in t.csv.*acc1.*--score-col"):
        store.import_tracker_csv(path, TrackerMapping(score_col="acc"))
    with pytest.raises(StoreError, match="No file"):
        store.import_tracker_csv(tmp_path / "nope.csv", TrackerMapping())
    assert store.list_runs() == []


def test_quicktune_tracker_csv_counts(shared_dir: Path, tmp_path: Path) -> None:
    path = shared_dir / QUICKTUNE
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    n_failed = sum(1 for r in rows if r["eval_top1"] == "" or r["State"] != "finished")
    n_datasets = len({r["dataset"] for r in rows})
    assert (len(rows), n_datasets) == (1000, 30)

    store = Store.at(tmp_path / "s.duckdb")
    report = store.import_tracker_csv(path, TrackerMapping())
    assert report.runs_added == len(rows) and report.rows_failed == 0
    assert report.datasets_added == n_datasets == report.profiles_added
    assert report.by_status == {"completed": len(rows) - n_failed, "failed": n_failed}
    assert len(store.list_runs(status="failed")) == n_failed
    assert store.datasets_frame().height == n_datasets
    completed = store.sql(
        "SELECT min(score) AS lo, max(score) AS hi FROM runs WHERE status = 'completed'"
    ).row(0)
    assert 0.0 <= completed[0] <= completed[1] <= 1.0
    frame = store.training_frame()
    assert frame.height == len(rows)
    assert frame["feat_n_classes"].null_count() == 0
    assert set(frame["feat_n_classes"].unique()) <= {19.0, 20.0}
    again = store.import_tracker_csv(path, TrackerMapping())
    assert (again.runs_added, again.runs_skipped, again.datasets_added) == (0, len(rows), 0)
    assert len(store.list_runs()) == len(rows)
