"""Faults of the disk under the store: a truncated, foreign or schema-damaged file, a full
disk, a read-only store, a large import, and an export over an existing file.

Every test logs runs first and checks, after the fault, that the store opens and holds
each of them unchanged; every message a user sees is one line naming the file or folder
and what to do.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.experiment_store import Store
from mlsel.experiment_store._faults import StoreFullError, StoreReadOnlyError
from mlsel.kernel import Config, EpochRecord, RunResult, StoreError, StoreFormatError

runner = CliRunner()
WIDE = {"COLUMNS": "400"}  # the red line is never wrapped by the terminal width


def _log_some(store: Store, n: int = 4) -> None:
    for i in range(n):
        curve = tuple(EpochRecord(e, train_loss=1.0 / (e + 1), score=0.1 * e) for e in range(3))
        store.log_run(
            f"fp-{i % 2}",
            Config("torchvision", "resnet18", seed=i),
            RunResult("completed", 0.5 + i / 100, curve=curve, wall_seconds=1.0),
        )


def _runs(store: Store) -> list[tuple[Any, ...]]:
    """Every run with what identifies it and its curve, for before/after comparisons."""
    return sorted(
        (
            r.run_id,
            r.dataset,
            r.status,
            r.result.score,
            r.config.seed,
            tuple((e.epoch, e.score) for e in r.result.curve),
        )
        for r in store.list_runs()
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(message: str) -> str:
    lines = [line for line in message.splitlines() if line.strip()]
    assert len(lines) == 1, message
    assert "Traceback" not in message
    return lines[0]


def _cli(*args: str) -> Any:
    return runner.invoke(app, list(args), env=WIDE)


@pytest.fixture
def logged(mlsel_home: Path) -> tuple[Store, list[tuple[Any, ...]], Path]:
    """A store of ``mlsel_home`` with a few runs, their snapshot, and an export backup."""
    store = Store.open()
    _log_some(store)
    backup = mlsel_home.parent / f"{mlsel_home.name}-backup.parquet"
    store.export_parquet(backup)
    return store, _runs(store), backup


def _restored_from(backup: Path, path: Path) -> Store:
    """Follow the message's advice: move the bad file away, import the backup."""
    path.rename(path.with_name(path.name + ".bad"))
    store = Store.at(path)
    store.import_file(backup)
    return store


def _same_runs(after: list[tuple[Any, ...]], before: list[tuple[Any, ...]]) -> None:
    # An import marks runs `imported`; everything else is kept.
    assert [r[:2] + r[3:] for r in after] == [r[:2] + r[3:] for r in before]


# -- 1. truncated and foreign files ----------------------------------------------------------


@pytest.mark.parametrize("keep", [4096, 12288, "half"])
def test_truncated_store_is_refused_by_name_and_restorable(logged, keep) -> None:
    store, before, backup = logged
    data = store.path.read_bytes()
    store.path.write_bytes(data[: len(data) // 2 if keep == "half" else keep])
    kept = _digest(store.path)
    with pytest.raises(StoreFormatError) as caught:
        Store.at(store.path)
    message = _one_line(str(caught.value))
    assert f"The store file {store.path} is truncated" in message
    assert "mlsel store export" in message and "--home" in message
    assert "IO Error" not in message and "Could not read" not in message
    assert _digest(store.path) == kept  # mlsel did not modify it
    result = _cli("runs")
    assert result.exit_code == 2 and "is truncated" in _one_line(result.output)
    _same_runs(_runs(_restored_from(backup, store.path)), before)


def test_truncated_after_opening_is_one_line_too(logged) -> None:
    store, before, _ = logged
    data = store.path.read_bytes()
    store.path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreFormatError, match="is truncated or damaged") as caught:
        store.list_runs()  # a Store already open does not check the file again
    assert "Could not read" not in _one_line(str(caught.value))
    store.path.write_bytes(data)
    assert _runs(Store.at(store.path)) == before


def test_foreign_file_names_the_file_and_the_fix(logged) -> None:
    store, before, backup = logged
    store.path.write_bytes(b"PK\x03\x04" + os.urandom(6000))
    with pytest.raises(StoreFormatError) as caught:
        Store.at(store.path)
    message = _one_line(str(caught.value))
    assert f"store path {store.path} is not a DuckDB database" in message
    assert "Move it away" in message and "--home" in message and "mlsel store export" in message
    _same_runs(_runs(_restored_from(backup, store.path)), before)


# -- 2. a store whose tables were dropped ----------------------------------------------------


@pytest.mark.parametrize(
    "damage, lacks",
    [
        ("DROP TABLE epochs", "the table epochs of its schema version 4"),
        ("DROP TABLE epochs; DROP TABLE rankers", "the tables epochs, rankers"),
        ("ALTER TABLE runs DROP COLUMN wall_seconds", "the column runs.wall_seconds"),
    ],
)
def test_damaged_schema_is_refused_when_opened(logged, damage: str, lacks: str) -> None:
    store, before, backup = logged
    con = duckdb.connect(str(store.path))
    con.execute(damage)
    con.close()
    kept = _digest(store.path)
    with pytest.raises(StoreFormatError) as caught:
        Store.open()  # what `mlsel train` does before it trains
    message = _one_line(str(caught.value))
    assert f"The experiment store {store.path} is damaged: it lacks {lacks}" in message
    assert "mlsel store import" in message and "Catalog Error" not in message
    assert _digest(store.path) == kept
    result = _cli("runs")
    assert result.exit_code == 2 and "is damaged" in _one_line(result.output)
    _same_runs(_runs(_restored_from(backup, store.path)), before)


# -- 3. a full disk --------------------------------------------------------------------------


@contextmanager
def _tmpfs(folder: Path, size: str = "8m") -> Iterator[Path]:
    """A small tmpfs mounted on ``folder`` (the test skips where mounting is not allowed)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder: Path, leave: int = 0) -> Path:
    """Fill ``folder``'s disk, then free ``leave`` bytes; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def _stale_run(store: Store) -> str:
    """A run left ``running`` by a process that has ended."""
    run_id = store.start_run("fp-0", Config("torchvision", "resnet18", seed=99))
    ended = subprocess.Popen(["true"])
    ended.wait()
    con = duckdb.connect(str(store.path))
    con.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [ended.pid, run_id])
    con.close()
    return run_id


def test_full_disk_fails_writes_in_one_line_and_reads_go_on(
    mlsel_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _tmpfs(mlsel_home):
        store = Store.open()
        _log_some(store)
        stale = _stale_run(store)
        export = mlsel_home / "backup.parquet"
        store.export_parquet(export)
        kept_export = _digest(export)
        before = _runs(store)
        filler = _fill(mlsel_home)
        full = f"No space left on {mlsel_home}: free space, then rerun; nothing stored was lost."

        config = Config("torchvision", "resnet50", seed=7)
        writes: list[Callable[[], object]] = [
            lambda: store.log_run("fp-0", config, RunResult("completed", 0.9)),
            lambda: store.start_run("fp-0", config),
            lambda: store.log_epoch(stale, EpochRecord(5, score=0.3)),
            lambda: store.set_setting("refit_every", 5),
            lambda: store.export_parquet(export),  # the export's own disk is full too
        ]
        for write in writes:
            with pytest.raises(StoreFullError) as caught:
                write()
            assert _one_line(str(caught.value)) == full
        assert _digest(export) == kept_export  # the failed export left the old one whole
        assert not [p.name for p in mlsel_home.iterdir() if "partial" in p.name or ".new" in p.name]

        # Reading needs no space: opening an up-to-date store writes nothing, and the run
        # of the ended process is marked interrupted later, when there is room.
        with caplog.at_level(logging.WARNING):
            reopened = Store.open()
        assert "stay 'running' for now: No space left on" in caplog.text
        assert _runs(reopened) == before
        assert reopened.training_frame().height == len(before) - 1  # the running one is not
        assert reopened.info()["runs"] == len(before)
        result = _cli("runs")
        assert result.exit_code == 0, result.output
        assert _cli("store", "info").exit_code == 0
        result = _cli("store", "set", "refit_every", "5")
        assert result.exit_code == 2 and _one_line(result.output) == f"error: {full}"

        filler.unlink()
        after = Store.open()
        assert after.get_run(stale).status == "interrupted"
        assert [r for r in _runs(after) if r[0] != stale] == [r for r in before if r[0] != stale]
        after.log_run("fp-0", config, RunResult("completed", 0.9))
        assert len(after.list_runs()) == len(before) + 1


@pytest.mark.parametrize("leave", [16384, 300_000])
def test_a_write_on_a_nearly_full_disk_is_stored_exactly_when_it_returns(
    mlsel_home: Path, leave: int
) -> None:
    with _tmpfs(mlsel_home):
        store = Store.open()
        _log_some(store)
        before = _runs(store)
        filler = _fill(mlsel_home, leave=leave)  # room for the log, maybe not for a block
        new_ids: list[str] = []
        curve = tuple(EpochRecord(e, train_loss=1.0, score=0.1) for e in range(20))
        for batch in range(60):  # until a write needs more than the free blocks and space
            rows = [
                (
                    "fp-0",
                    Config("torchvision", "vgg11", seed=batch * 100 + i),
                    RunResult("completed", i / 100, curve=curve),
                )
                for i in range(50)
            ]
            try:
                new_ids.extend(store.log_runs(rows))
            except StoreFullError:
                break
        else:
            pytest.fail("the disk never filled")
        assert {r[0] for r in _runs(Store.open())} == {r[0] for r in before} | set(new_ids)
        filler.unlink()
        store.log_run("fp-1", Config("torchvision", "vgg11"), RunResult("failed"))
        assert not (mlsel_home / "experiments.duckdb.wal").exists()
        assert set(before) <= set(_runs(Store.open()))
        assert len(Store.open().list_runs()) == len(before) + len(new_ids) + 1


class _CheckpointFindsNoSpace:
    """A DuckDB connection whose CHECKPOINT fails as it does on a full disk."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def execute(self, query: str, *args: Any) -> Any:
        if query.strip().upper() == "CHECKPOINT":
            raise duckdb.IOException(
                'Could not write file "/x/experiments.duckdb": No space left on device'
            )
        return self._con.execute(query, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_a_committed_write_whose_checkpoint_fails_stands_with_a_warning(
    logged, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mlsel.experiment_store._engine import attached as real

    store, before, backup = logged

    @contextmanager
    def attached(path: Path, *, write: bool) -> Iterator[Any]:
        with real(path, write=write) as con:
            yield _CheckpointFindsNoSpace(con)

    fresh = Store.at(store.path.with_name("other.duckdb"))
    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING):
        patch.setattr("mlsel.experiment_store._access.attached", attached)
        report = fresh.import_file(backup)  # committed, then checkpointed
    assert report.runs_added == len(before)
    assert "which it could not fold into the store (no space left on" in caplog.text
    assert "nothing stored was lost" in caplog.text
    _same_runs(_runs(Store.at(fresh.path)), before)
    assert _runs(Store.open()) == before


def test_cli_turns_duckdb_no_space_text_into_one_line() -> None:
    from mlsel.cli.app import _one_line as cli_line

    raw = duckdb.IOException(
        'Could not write file "/data/h/experiments.duckdb.wal": No space left on device\nmore'
    )
    assert cli_line(raw) == (
        "the disk is full: no space left on the disk: free space, then rerun; "
        "nothing stored was lost."
    )
    assert "\n" not in cli_line(StoreError("a\nb"))


# -- 4. a large import leaves no large WAL ----------------------------------------------------


def test_import_checkpoints_so_no_wal_is_left(logged) -> None:
    from mlsel.metalearn.bundled import bundled_file

    store, before, _ = logged
    bundled = bundled_file()
    if bundled is None:
        pytest.skip("this install ships no bundled runs")
    report = store.import_file(bundled)
    assert report.runs_added > 100
    wal = store.path.with_name(store.path.name + ".wal")
    assert not wal.exists() or wal.stat().st_size == 0
    runs = _runs(Store.open())
    assert len(runs) == len(before) + report.runs_added
    assert set(before) <= set(runs)


# -- 5. export over an existing file ----------------------------------------------------------


def test_export_refuses_an_existing_file_unless_forced(logged, tmp_path: Path) -> None:
    store, before, _ = logged
    target = tmp_path / "runs.parquet"
    target.write_bytes(b"precious")
    result = _cli("store", "export", str(target))
    assert result.exit_code == 2
    line = _one_line(result.output)
    assert f"The export file {target} already exists" in line and "--force" in line
    assert target.read_bytes() == b"precious"
    with pytest.raises(StoreError, match="already exists"):
        store.export_parquet(target, overwrite=False)
    assert target.read_bytes() == b"precious"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    result = _cli("store", "export", str(target), "--force")
    assert result.exit_code == 0, result.output
    fresh = Store.at(tmp_path / "copy.duckdb")
    assert fresh.import_file(target).runs_added == len(before)
    assert _runs(Store.open()) == before


# -- 6. a read-only store ---------------------------------------------------------------------


def _chattr(flag: str, *paths: Path) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr {flag} is not supported here: {done.stderr.strip()}")


@contextmanager
def _read_only(how: str, store: Path) -> Iterator[None]:
    folder = store.parent
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes files whatever their mode (chattr +i covers root)")
        store.chmod(0o444)
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
            store.chmod(0o644)
    elif how in ("chattr-file", "chattr-folder"):
        target = store if how == "chattr-file" else folder
        _chattr("+i", target)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(target)], check=True)
    else:  # a read-only mount
        done = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True)
        assert done.returncode == 0, done.stderr
        try:
            yield
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)


@pytest.mark.parametrize("how", ["chmod", "chattr-file", "chattr-folder", "mount"])
def test_read_only_store_reads_and_refuses_writes_in_one_line(mlsel_home: Path, how) -> None:
    with _tmpfs(mlsel_home) if how == "mount" else _nothing():
        store = Store.open()
        _log_some(store)
        stale = _stale_run(store)
        before = _runs(store)
        with _read_only(how, store.path):
            reopened = Store.open()  # opening writes nothing (the stale run waits)
            assert _runs(reopened) == before
            assert reopened.training_frame().height == len(before) - 1
            assert reopened.info()["runs"] == len(before)
            assert _cli("runs").exit_code == 0
            with pytest.raises(StoreReadOnlyError) as caught:
                reopened.log_run("fp-0", Config("torchvision", "vgg11"), RunResult("failed"))
            message = _one_line(str(caught.value))
            assert f"The experiment store {store.path} is read-only (" in message
            assert "cannot log runs" in message and "--home" in message
            result = _cli("store", "set", "refit_every", "5")
            assert result.exit_code == 2 and "is read-only" in _one_line(result.output)
        after = Store.open()
        assert after.get_run(stale).status == "interrupted"
        assert [r for r in _runs(after) if r[0] != stale] == [r for r in before if r[0] != stale]
        after.set_setting("refit_every", 5)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
