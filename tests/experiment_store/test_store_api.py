"""Conformance of every Store call: typed records in, equal records out."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from mlsel.experiment_store import Store
from mlsel.experiment_store._codec import config_json
from mlsel.kernel import Config, DatasetProfile, EpochRecord, RunResult, StoreError
from mlsel.kernel.home import Home

CFG = Config(backend="torchvision", arch="resnet18", lr=0.01, extra=(("mixup", 0.2),))
PROFILE = DatasetProfile(
    fingerprint="fp-digits",
    task="classify",
    features={"n_classes": 10.0, "n_train": 1437.0, "sharpness": float("nan")},
    profiler_version="p1",
    name="digits",
    path="/data/digits",
    warnings=("3 duplicates across splits",),
)


@pytest.fixture
def store(mlsel_home: Path) -> Store:
    return Store.open()


def _result(status: str = "completed", score: float | None = 0.8, **kw) -> RunResult:
    return RunResult(status=status, score=score, **kw)


def test_open_creates_the_store_under_mlsel_home(store: Store, mlsel_home: Path) -> None:
    assert store.path == Home.resolve().store == mlsel_home / "experiments.duckdb"
    assert store.path.is_file()
    assert (mlsel_home / "experiments.duckdb.lock").is_file()
    assert store.info()["schema_version"] == 4


def test_profile_round_trip_and_latest_version(store: Store) -> None:
    assert store.get_profile("fp-digits") is None
    store.save_profile(PROFILE)
    got = store.get_profile("fp-digits")
    assert got is not None and math.isnan(got.features["sharpness"])
    assert got == DatasetProfile(**{**PROFILE.__dict__, "features": got.features})
    assert {k: v for k, v in got.features.items() if k != "sharpness"} == {
        "n_classes": 10.0,
        "n_train": 1437.0,
    }
    newer = DatasetProfile("fp-digits", "classify", {"n_classes": 10.0}, "p2", name="")
    store.save_profile(newer)
    assert store.get_profile("fp-digits").profiler_version == "p2"
    assert store.get_profile("fp-digits").name == "digits"  # an empty name keeps the old one
    assert store.get_profile("fp-digits", "p1").features["n_train"] == 1437.0
    store.save_profile(PROFILE.__class__(**{**PROFILE.__dict__, "features": {"a": 1.0}}))
    assert store.get_profile("fp-digits", "p1").features == {"a": 1.0}  # replaced, not merged


def test_start_epochs_finish_round_trip(store: Store) -> None:
    store.save_profile(PROFILE)
    run_id = store.start_run("fp-digits", CFG, hardware={"device": "cpu"}, versions={"torch": "2"})
    assert store.get_run(run_id).status == "running"
    store.log_epoch(run_id, EpochRecord(0, train_loss=1.5, val_loss=1.2, score=0.4, seconds=2.0))
    store.log_epoch(run_id, EpochRecord(1, train_loss=1.0, val_loss=0.9, score=0.6, seconds=2.1))
    store.log_epoch(run_id, EpochRecord(1, train_loss=0.9, val_loss=0.8, score=0.7, seconds=2.2))
    assert [e.score for e in store.epochs(run_id)] == [0.4, 0.7]
    result = _result(
        metrics={"accuracy": 0.81, "macro_f1": 0.8},
        confusion=((5, 1), (0, 6)),
        wall_seconds=4.5,
        seconds_per_epoch=2.1,
        peak_gpu_mb=None,
        peak_host_mb=512.0,
        hardware={"cpu": "x86"},
        artifact_dir="/runs/x",
    )
    store.finish_run(run_id, result)
    record = store.get_run(run_id)
    assert record.config == CFG
    assert record.dataset == "fp-digits" and record.source == "local"
    assert record.result.curve == tuple(store.epochs(run_id))
    assert record.result.hardware == {"device": "cpu", "cpu": "x86"}
    assert record.result.versions == {"torch": "2"}
    expected = RunResult(
        **{
            **result.__dict__,
            "curve": record.result.curve,
            "hardware": record.result.hardware,
            "versions": {"torch": "2"},
        }
    )
    assert record.result == expected
    assert record.started_at and record.finished_at and record.started_at <= record.finished_at
    with pytest.raises(StoreError, match="already completed"):
        store.finish_run(run_id, result)
    with pytest.raises(StoreError, match="only be logged to a running run"):
        store.log_epoch(run_id, EpochRecord(2))


def test_finish_with_curve_replaces_logged_epochs(store: Store) -> None:
    run_id = store.start_run("fp-x", CFG)
    store.log_epoch(run_id, EpochRecord(0, score=0.1))
    curve = (EpochRecord(0, score=0.2), EpochRecord(1, score=0.3))
    store.finish_run(run_id, _result("pruned", 0.3, curve=curve))
    assert store.get_run(run_id).result.curve == curve
    assert store.get_run(run_id).status == "pruned"


def test_log_run_and_bulk_log_runs(store: Store) -> None:
    curve = (EpochRecord(0, score=0.5), EpochRecord(1, score=0.6))
    one = store.log_run("fp-a", CFG, _result(curve=curve, wall_seconds=3.0), source="bundled")
    many = store.log_runs(
        [
            ("fp-a", CFG.with_(lr=0.1), _result("failed", None, error="CUDA OOM")),
            ("fp-b", CFG.with_(arch="vgg11"), _result("timeout", 0.3)),
        ]
    )
    assert len(set([one, *many])) == 3
    assert store.get_run(one).result.curve == curve
    assert store.get_run(one).source == "bundled"
    assert store.get_run(many[0]).result.error == "CUDA OOM"
    assert store.get_run(many[0]).result.score is None
    assert store.log_runs([]) == []


def test_log_run_import_key_is_added_once(store: Store) -> None:
    first = store.log_run("fp-a", CFG, _result(), source="imported", import_key="k1")
    again = store.log_run("fp-a", CFG, _result(score=0.1), source="imported", import_key="k1")
    assert first == again
    assert len(store.list_runs()) == 1


def test_list_runs_filters_and_order(store: Store) -> None:
    store.save_profile(PROFILE)
    ids = [store.log_run("fp-digits", CFG, _result()) for _ in range(3)]
    other = store.log_run("fp-other", CFG, _result("failed", None), source="imported")
    assert {r.run_id for r in store.list_runs()} == {*ids, other}
    assert {r.run_id for r in store.list_runs(dataset="digits")} == set(ids)
    assert {r.run_id for r in store.list_runs(dataset="fp-digits")} == set(ids)
    assert {r.run_id for r in store.list_runs(dataset="fp-dig")} == set(ids)  # prefix
    assert [r.run_id for r in store.list_runs(status="failed")] == [other]
    assert [r.run_id for r in store.list_runs(source="imported")] == [other]
    assert len(store.list_runs(limit=2)) == 2
    started = [r.started_at for r in store.list_runs()]
    assert started == sorted(started, reverse=True)


def test_get_run_unknown_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="No run 'nope'"):
        store.get_run("nope")
    with pytest.raises(StoreError, match="No run"):
        store.finish_run("nope", _result())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.log_run("", CFG, _result()), "dataset_fp"),
        (lambda s: s.log_run("fp", "resnet", _result()), "'config'"),
        (lambda s: s.log_run("fp", CFG, _result("running")), "result.status"),
        (lambda s: s.log_run("fp", CFG, _result(), source="cloud"), "'source'"),
        (lambda s: s.start_run("fp", CFG, source="nope"), "'source'"),
        (lambda s: s.save_profile({"fingerprint": "x"}), "DatasetProfile"),
    ],
)
def test_bad_input_is_rejected_with_the_value(store: Store, call, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        call(store)
    assert store.list_runs() == []


GPU_HARDWARE = {"device": "cuda:0", "gpu": "H200", "cpu": "x86", "torch_threads": "16"}


def test_frames(store: Store) -> None:
    store.save_profile(PROFILE)
    store.save_profile(DatasetProfile("fp-b", "detect", {"n_classes": 3.0, "boxes": 2.5}, "p1"))
    a = store.log_run("fp-digits", CFG, _result(wall_seconds=5.0, hardware=GPU_HARDWARE))
    b = store.log_run("fp-b", CFG.with_(arch="yolo11n"), _result("failed", None))
    running = store.start_run("fp-b", CFG)
    runs = store.runs_frame()
    assert runs.height == 3 and set(runs["run_id"]) == {a, b, running}
    assert store.runs_frame(dataset="digits")["run_id"].to_list() == [a]
    assert store.runs_frame(status="failed")["run_id"].to_list() == [b]

    frame = store.training_frame()
    head = [
        "run_id",
        "dataset",
        "dataset_name",
        "task",
        "source",
        "status",
        "score",
        "wall_seconds",
        "seconds_per_epoch",
        "peak_gpu_mb",
        "peak_host_mb",
        "device",
        "hw_cpu",
        "hw_threads",
        "hw_gpu",
        "n_train",
    ]
    assert frame.columns[: len(head)] == head
    gpu_row = frame.filter(frame["run_id"] == a).row(0, named=True)
    assert (gpu_row["device"], gpu_row["hw_gpu"], gpu_row["hw_cpu"]) == ("cuda:0", "H200", "x86")
    cfg_cols = [c for c in frame.columns if c.startswith("cfg_")]
    assert cfg_cols == [f"cfg_{name}" for name in CFG.to_dict()]
    assert sorted(c for c in frame.columns if c.startswith("feat_")) == [
        "feat_boxes",
        "feat_n_classes",
        "feat_n_train",
        "feat_sharpness",
    ]
    assert frame.schema["feat_n_classes"] == pl.Float64
    assert set(frame["run_id"]) == {a, b}  # the running run is not training data
    row = frame.filter(pl.col("run_id") == a).row(0, named=True)
    assert row["device"] == "cuda:0" and row["n_train"] == 1437.0
    assert row["cfg_lr"] == 0.01 and row["cfg_extra"] == '{"mixup":0.2}'
    assert row["dataset_name"] == "digits" and row["task"] == "classify"
    assert frame.filter(pl.col("run_id") == b)["feat_n_train"].to_list() == [None]

    datasets = store.datasets_frame()
    assert dict(zip(datasets["fingerprint"], datasets["n_runs"], strict=True)) == {
        "fp-digits": 1,
        "fp-b": 2,
    }
    assert {"fingerprint", "name", "task", "source", "n_runs"} <= set(datasets.columns)


def test_sql_is_read_only(store: Store) -> None:
    store.log_run("fp-a", CFG, _result(score=0.5))
    out = store.sql("SELECT arch, count(*) AS n FROM runs WHERE score > ? GROUP BY arch", [0.1])
    assert out.to_dicts() == [{"arch": "resnet18", "n": 1}]
    with pytest.raises(StoreError, match="read-only"):
        store.sql("DELETE FROM runs")
    with pytest.raises(StoreError):
        store.sql("SELEC nonsense")
    assert len(store.list_runs()) == 1


def test_config_key_matches_config(store: Store) -> None:
    _, key = config_json(CFG)
    assert key == CFG.key()


def test_rankers(store: Store) -> None:
    assert store.active_ranker() is None and store.list_rankers() == []
    store.log_run("fp-a", CFG, _result())
    assert store.runs_since_active_ranker() == 1
    store.save_ranker("v1", "/r/v1.txt", rows=10, evaluation={"ndcg@5": 0.7}, active=True)
    assert store.runs_since_active_ranker() == 0
    store.log_runs([("fp-a", CFG, _result()), ("fp-a", CFG, _result("failed", None))])
    store.start_run("fp-a", CFG)  # not finished: not counted
    assert store.runs_since_active_ranker() == 2
    store.save_ranker("v2", "/r/v2.txt", rows=12, evaluation={"ndcg@5": 0.6}, active=False)
    active = store.active_ranker()
    assert active is not None and active.version == "v1" and active.evaluation == {"ndcg@5": 0.7}
    store.activate_ranker("v2")
    assert [(r.version, r.active) for r in store.list_rankers()] == [("v2", True), ("v1", False)]
    with pytest.raises(StoreError, match="No ranker version 'v9'"):
        store.activate_ranker("v9")


def test_settings(store: Store) -> None:
    assert store.get_setting("bundled_loaded") is None
    assert store.get_setting("bundled_loaded", False) is False
    store.set_setting("bundled_loaded", {"version": 1, "runs": [1, 2]})
    assert store.get_setting("bundled_loaded") == {"version": 1, "runs": [1, 2]}
    store.set_setting("bundled_loaded", True)
    assert Store.open().get_setting("bundled_loaded") is True
