"""Concurrent writers, SIGKILL mid-run, foreign or corrupt files, migrations, the lock."""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing
import os
import random
import threading
import time
from pathlib import Path

import duckdb
import pytest

from mlsel.experiment_store import Store
from mlsel.experiment_store._schema import SCHEMA_VERSION, migrate
from mlsel.kernel import Config, RunResult, StoreError, StoreFormatError
from tests.experiment_store._store_workers import COMPLETED_BEFORE_KILL, log_many, log_then_hang

SPAWN = multiprocessing.get_context("spawn")


def _digest(path: Path) -> tuple[str, float]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime


@pytest.mark.slow
def test_four_processes_log_fifty_runs_each(tmp_path: Path) -> None:
    path = tmp_path / "experiments.duckdb"
    Store.at(path)
    start = SPAWN.Event()
    workers = [SPAWN.Process(target=log_many, args=(str(path), w, 50, start)) for w in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    store = Store.at(path)
    runs = store.list_runs()
    assert len(runs) == 200
    assert sorted(r.config.seed for r in runs) == sorted(
        w * 1000 + i for w in range(4) for i in range(50)
    )
    assert {r.status for r in runs} == {"completed"}
    assert store.sql("SELECT count(*) AS n FROM epochs")["n"].to_list() == [20]
    per_dataset = store.sql("SELECT dataset, count(*) AS n FROM runs GROUP BY 1 ORDER BY 1")
    assert per_dataset.to_dicts() == [{"dataset": f"fp-{w}", "n": 50} for w in range(4)]


def test_threads_of_one_process_share_the_store(tmp_path: Path) -> None:
    store = Store.at(tmp_path / "s.duckdb")
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(8):
                store.log_run(
                    "fp",
                    Config("torchvision", "resnet18", seed=t * 100 + i),
                    RunResult("completed", 0.5),
                )
                store.list_runs(limit=3)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.list_runs()) == 24


def test_sigkill_mid_run_keeps_completed_runs_and_marks_the_run_interrupted(
    tmp_path: Path,
) -> None:
    path, ready = tmp_path / "experiments.duckdb", tmp_path / "ready"
    child = SPAWN.Process(target=log_then_hang, args=(str(path), str(ready)))
    child.start()
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline and child.is_alive():
        time.sleep(0.01)
    assert ready.exists(), "the child never started its run"
    time.sleep(random.uniform(0.0, 0.1))  # kill at a random point, maybe mid-write
    child.kill()  # SIGKILL
    child.join()
    assert child.exitcode == -9
    run_id = ready.read_text()

    store = Store.at(path)
    completed = store.list_runs(status="completed")
    assert sorted((r.config.seed, r.result.score) for r in completed) == [
        (i, 0.5 + i / 10) for i in range(COMPLETED_BEFORE_KILL)
    ]
    killed = store.get_run(run_id)
    assert killed.status == "interrupted"
    assert f"pid {child.pid}" in (killed.result.error or "")
    epochs = [e.epoch for e in killed.result.curve]
    assert len(epochs) >= 2 and epochs == list(range(len(epochs)))
    assert len(store.list_runs()) == COMPLETED_BEFORE_KILL + 1


def test_running_run_of_a_live_process_is_left_running(tmp_path: Path) -> None:
    store = Store.at(tmp_path / "s.duckdb")
    run_id = store.start_run("fp", Config("torchvision", "resnet18"))
    assert Store.at(tmp_path / "s.duckdb").get_run(run_id).status == "running"


@pytest.mark.parametrize("content", [b"", b"run_id,score\nabc,0.5\n" * 100, os.urandom(8192)])
def test_foreign_file_is_refused_and_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "experiments.duckdb"
    path.write_bytes(content)
    before = _digest(path)
    with pytest.raises(StoreFormatError, match="store path"):
        Store.at(path)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "experiments.duckdb",
        "experiments.duckdb.lock",
    ]


def test_duckdb_file_without_our_schema_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "experiments.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (id INTEGER, amount DOUBLE); INSERT INTO sales VALUES (1, 2)")
    con.close()
    before = _digest(path)
    with pytest.raises(StoreFormatError, match="not an mlsel experiment store"):
        Store.at(path)
    assert _digest(path) == before
    assert not path.with_name(path.name + ".wal").exists()


def test_corrupt_store_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "experiments.duckdb"
    Store.at(path).log_run("fp", Config("torchvision", "resnet18"), RunResult("completed", 0.5))
    data = bytearray(path.read_bytes())
    data[12288:14288] = b"\x00\xff" * 1000  # garbage over the first data blocks
    path.write_bytes(bytes(data))
    before = _digest(path)
    with pytest.raises(StoreFormatError, match="cannot be read"):
        Store.at(path)
    assert _digest(path) == before


def test_store_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "experiments.duckdb"
    Store.at(path)
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO schema_version VALUES (?, now()::TIMESTAMP, '9.9')", [SCHEMA_VERSION + 7]
    )
    con.close()
    before = _digest(path)
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 7}, newer"):
        Store.at(path)
    assert _digest(path) == before


def test_migration_from_version_1(tmp_path: Path) -> None:
    path = tmp_path / "experiments.duckdb"
    con = duckdb.connect(str(path))
    con.begin()
    assert migrate(con, target=1) == 1
    con.execute(
        """INSERT INTO runs (run_id, dataset, source, status, config, config_key, arch,
               backend, score, metrics, hardware, versions, finished_at)
           VALUES ('old1', 'fp', 'local', 'completed',
                   '{"backend": "torchvision", "arch": "resnet18", "lr": 0.5}', 'k',
                   'resnet18', 'torchvision', 0.9, '{}', '{}', '{}', TIMESTAMP '2024-01-02')"""
    )
    con.commit()
    con.close()
    store = Store.at(path)
    assert store.info()["schema_version"] == SCHEMA_VERSION == 4
    old = store.get_run("old1")
    assert old.result.score == 0.9 and old.config.lr == 0.5
    assert store.sql("SELECT recorded_at FROM runs")["recorded_at"].to_list()[0].year == 2024
    assert store.runs_since_active_ranker() == 1
    store.save_ranker("v1", "/r", rows=1, evaluation={}, active=True)  # v2 tables exist
    versions = store.sql("SELECT version FROM schema_version ORDER BY 1")["version"].to_list()
    assert versions == [1, 2, 3, 4]


class _FakeTime:
    """A clock that moves only when the lock sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_lock_held_too_long_is_a_clear_error(tmp_path: Path) -> None:
    from mlsel.experiment_store._lock import _MAX_WAIT, StoreLock

    path = tmp_path / "experiments.duckdb"
    Store.at(path)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR)
    fake = _FakeTime()
    lock = StoreLock(path.with_name(path.name + ".lock"), 0.3, clock=fake.clock, sleep=fake.sleep)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(StoreError, match="busy: another process held"):
            with lock.hold(shared=True):
                pass
        # it waited the whole timeout, and no single wait overshot it by much
        assert 0.3 <= fake.now <= 0.3 + 1.5 * _MAX_WAIT
        assert len(fake.slept) > 3 and max(fake.slept) <= 1.5 * _MAX_WAIT
        with pytest.raises(StoreError, match="busy"):
            Store(path, lock_timeout=0.05).list_runs()
    finally:
        os.close(fd)
    assert Store(path, lock_timeout=0.3).list_runs() == []


def _fork_child_logs(path: str) -> None:
    store = Store.at(path, lock_timeout=20)
    run_id = store.start_run("fp", Config("torchvision", "resnet18", seed=7))
    store.finish_run(run_id, RunResult("completed", 0.4))


def test_forked_children_can_log_after_the_parent_used_frames(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    store = Store.at(path)
    store.log_run("fp", Config("torchvision", "resnet18"), RunResult("completed", 0.5))
    assert store.training_frame().height == 1  # the parent has used Polars and DuckDB
    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=_fork_child_logs, args=(str(path),)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [c.exitcode for c in children] == [0, 0]
    assert len(store.list_runs(status="completed")) == 3
