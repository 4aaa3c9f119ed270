"""The model registry, dataset versions and the prediction log in the store."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from mlsel.experiment_store import PredictionRow, Store
from mlsel.kernel.errors import ConfigError, StoreError
from mlsel.kernel.records import Config, RunResult

CONFIG = Config(backend="torchvision", arch="resnet18")


def _runs(store: Store, n: int, status: str = "completed") -> list[str]:
    return [
        store.log_run("fp-a", CONFIG.with_(seed=i), RunResult(status=status, score=0.5 + i / 10))
        for i in range(n)
    ]


def _prediction(i: int, **changes: object) -> PredictionRow:
    values: dict[str, object] = {
        "prediction_id": f"p{i}",
        "model": "cats",
        "image_hash": f"{i:032x}",
        "label": "a",
        "confidence": 0.6,
        "top_k": (("a", 0.6), ("b", 0.4)),
        "probabilities": (0.6, 0.4),
        "classes": ("a", "b"),
        "model_version": 1,
    }
    values.update(changes)
    return PredictionRow(**values)  # type: ignore[arg-type]


def test_promote_versions_aliases_lineage_and_rollback(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    first, second, third = _runs(store, 3)
    registry = store.registry
    v1 = registry.promote("cats", first, by="test")
    assert (v1.ref, v1.aliases, v1.parent, v1.dataset) == ("cats@v1", ("champion",), None, "fp-a")
    v2 = registry.promote("cats", second, evaluation={"macro_f1": 0.7}, dataset_version="cats/v1")
    assert v2.parent == 1 and v2.dataset_version == "cats/v1" and v2.evaluation["macro_f1"] == 0.7
    registry.promote("cats", third, alias="challenger")
    assert registry.get("cats").version == 2 and registry.get("cats", "challenger").version == 3
    assert registry.get("cats", "v1").aliases == () and registry.get("cats", "3").run_id == third
    # promoting a run that already is a version moves the alias, with no new version
    assert registry.promote("cats", third).version == 3 and len(registry.versions("cats")) == 3
    assert registry.rollback("cats").version == 2
    assert registry.rollback("cats").version == 1  # a second rollback steps back again
    with pytest.raises(ConfigError, match="no earlier version"):
        registry.rollback("cats")
    assert registry.get("cats").version == 1  # a refused rollback changes nothing
    actions = [(c.action, c.version, c.previous) for c in registry.history("cats", "champion")]
    assert actions == [
        ("promote", 1, None),
        ("promote", 2, 1),
        ("promote", 3, 2),
        ("rollback", 2, 3),
        ("rollback", 1, 2),
    ]
    # a promotion after a rollback is undone by the next rollback
    registry.promote("cats", third)
    assert registry.rollback("cats").version == 1


def test_registry_refuses_what_it_cannot_keep(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    (failed,) = _runs(store, 1, status="failed")
    (done,) = _runs(store, 1)
    registry = store.registry
    with pytest.raises(ConfigError, match="no run 'nope'"):
        registry.promote("cats", "nope")
    with pytest.raises(ConfigError, match="not completed"):
        registry.promote("cats", failed)
    with pytest.raises(ConfigError, match="not a valid model name"):
        registry.promote("3", done)
    with pytest.raises(ConfigError, match="not a valid alias"):
        registry.promote("cats", done, alias="bad alias")
    with pytest.raises(ConfigError, match="no model named 'cats'"):
        registry.get("cats")
    registry.promote("cats", done)
    with pytest.raises(ConfigError, match="no alias 'staging'.*champion=v1"):
        registry.get("cats", "staging")
    assert registry.find("cats", "staging") is None and registry.names() == ["cats"]
    with pytest.raises(ConfigError, match="not set"):
        registry.rollback("cats", "staging")


def test_concurrent_promotions_number_versions_once(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    runs = _runs(store, 6)
    threads = [
        threading.Thread(target=Store.open(tmp_path).registry.register, args=("cats", run))
        for run in runs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    versions = store.registry.versions("cats")
    assert sorted(v.version for v in versions) == [1, 2, 3, 4, 5, 6]
    assert sorted(v.run_id for v in versions) == sorted(runs)


def test_dataset_versions_keep_their_lineage(tmp_path: Path) -> None:
    registry = Store.open(tmp_path).registry
    assert registry.dataset_version("cats") is None
    registry.save_dataset_version("cats", 1, "fp-1", "/d/v1", parent="fp-a", lineage={"new": 40})
    registry.save_dataset_version("cats", 2, "fp-2", "/d/v2", parent="fp-1", lineage={"new": 10})
    latest = registry.dataset_version("cats")
    assert latest is not None and (latest.ref, latest.parent, latest.lineage) == (
        "cats/v2",
        "fp-1",
        {"new": 10},
    )
    first = registry.dataset_version("cats", "v1")
    assert first is not None and first.fingerprint == "fp-1"
    assert [v.version for v in registry.dataset_versions("cats")] == [1, 2]


def test_prediction_log_is_idempotent_and_filterable(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    rows = [_prediction(i) for i in range(5)] + [_prediction(9, model_version=2)]
    assert store.log_predictions(rows) == 6
    assert store.log_predictions(rows[:3]) == 0  # the same spool brought in twice
    assert store.predictions_frame("cats").height == 6
    frame = store.predictions_frame("cats", model_version=2)
    assert frame["prediction_id"].to_list() == ["p9"]
    assert frame["probabilities"].to_list() == [[0.6, 0.4]]
    assert frame["classes"].to_list() == [["a", "b"]]
    assert store.predictions_frame("dogs").height == 0
    with pytest.raises(StoreError, match="2 probabilities for 3 classes"):
        store.log_predictions([_prediction(20, classes=("a", "b", "c"))])
    with pytest.raises(StoreError, match="source must be one of"):
        store.log_predictions([_prediction(21, source="upload")])
    assert store.predictions_frame().height == 6  # a refused batch writes nothing


def test_an_older_store_gains_the_registry(tmp_path: Path) -> None:
    import duckdb

    from mlsel.experiment_store._schema import migrate

    path = tmp_path / "experiments.duckdb"
    con = duckdb.connect(str(path))
    con.begin()
    migrate(con, target=3)
    con.commit()
    con.close()
    store = Store.at(path)
    assert store.info()["schema_version"] == 4
    assert store.predictions_frame().height == 0 and store.registry.names() == []
    assert store.log_predictions([_prediction(0, prediction_id=uuid.uuid4().hex)]) == 1
