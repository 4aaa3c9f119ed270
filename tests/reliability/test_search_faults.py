"""Fault injection on a running search: signals and kills at seeded random points.

Each test runs a search in its own process (``_search_main``, a stand-in trainer that
logs real runs to the real store), strikes it, and then checks what a user relies on:
the store opens, every completed run is intact, the statuses are exact (``interrupted``
for a signal or a kill, ``timeout`` for the deadline), and ``--resume`` continues.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlsel.experiment_store import Store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlsel.profilers import write_sample

    return write_sample(
        "digits", tmp_path_factory.mktemp("data") / "digits", classes=3, per_class=8
    )


def _start(home: Path, data: Path, progress: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.reliability._search_main", str(home), str(data)]
    return subprocess.Popen(
        [*command, "--progress", str(progress), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
        env={**os.environ, "MLSEL_NO_BUNDLED": "1"},
    )


def _epochs_logged(progress: Path) -> list[tuple[int, str, int]]:
    if not progress.is_file():
        return []
    rows = [line.split() for line in progress.read_text().splitlines() if line.strip()]
    return [(int(pid), run_id, int(epoch)) for pid, run_id, epoch in rows]


def _wait_for_epochs(process: subprocess.Popen[str], progress: Path, count: int) -> None:
    deadline = time.monotonic() + 90
    while len(_epochs_logged(progress)) < count:
        if process.poll() is not None:
            raise AssertionError(f"the search ended early: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("the search logged no epochs in 90 s")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _statuses(home: Path) -> dict[str, str]:
    return {r.run_id: r.status for r in Store.open(home).list_runs()}


def _completed_intact(home: Path, epochs: int) -> int:
    store = Store.open(home)
    done = [r for r in store.list_runs() if r.status == "completed"]
    for run in done:
        assert [e.epoch for e in store.epochs(run.run_id)] == list(range(1, epochs + 1))
        assert run.result.score is not None
    return len(done)


def _resume(home: Path, data: Path, progress: Path, name: str) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability._search_main",
            str(home),
            str(data),
            "--name",
            name,
            "--resume",
            "--max-trials",
            "5",
            "--epoch-s",
            "0.05",
            "--progress",
            str(progress),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MLSEL_NO_BUNDLED": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_cleanly_shows_the_board_and_copies_the_best(
    digits: Path, tmp_path: Path, signum: int
) -> None:
    home, progress, out = tmp_path / "home", tmp_path / "progress", tmp_path / "best"
    strike = random.Random(signum).randint(4, 6)  # epochs: past the first completed trial
    process = _start(home, digits, progress, "--name", "s", "--output", str(out))
    _wait_for_epochs(process, progress, strike)
    os.killpg(process.pid, signum)  # the whole group, as Ctrl-C in a terminal
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-2000:]
    report = json.loads(stdout.splitlines()[-1])
    assert report["interrupted"] and report["stop_reason"] == "interrupted"
    statuses = _statuses(home)
    assert "running" not in statuses.values()
    assert "interrupted" in statuses.values()
    assert _completed_intact(home, epochs=3) >= 1
    board = {row["run_id"]: row["status"] for row in report["leaderboard"]}
    assert {statuses[r] for r in board} <= {"completed", "interrupted"}
    assert report["best"]["status"] == "completed"
    assert json.loads((out / "metrics.json").read_text())["run_id"] == report["best"]["run_id"]
    again = _resume(home, digits, progress, "s")
    assert again["trials"]["completed"] >= 1 and not again["interrupted"]
    assert "running" not in _statuses(home).values()


@pytest.mark.parametrize("target", ["main", "worker", "group"])
def test_kill_9_leaves_interrupted_runs_and_resume_continues(
    digits: Path, tmp_path: Path, target: str
) -> None:
    home, progress = tmp_path / "home", tmp_path / "progress"
    rng = random.Random(target)
    process = _start(home, digits, progress, "--name", "k")
    _wait_for_epochs(process, progress, rng.randint(2, 5))
    worker = _epochs_logged(progress)[-1][0]
    if target == "main":
        os.kill(process.pid, signal.SIGKILL)
    elif target == "worker":
        os.kill(worker, signal.SIGKILL)
    else:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    deadline = time.monotonic() + 10  # an orphaned worker stops at once, not at its epoch
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)
    completed_before = _completed_intact(home, epochs=3)
    statuses = _statuses(home)  # this open marks runs of dead processes interrupted
    assert "running" not in statuses.values()
    assert "interrupted" in statuses.values()
    assert "timeout" not in statuses.values()
    again = _resume(home, digits, progress, "k")
    assert again["trials"]["completed"] >= 1
    assert _completed_intact(home, epochs=3) >= completed_before + 1


def test_a_worker_that_does_not_stop_by_the_deadline_is_closed_as_timeout(
    digits: Path, tmp_path: Path
) -> None:
    home, progress = tmp_path / "home", tmp_path / "progress"
    # 4 s budget: an epoch of 60 s outlasts the kill point (about 9 s in)
    process = _start(
        home, digits, progress, "--name", "d", "--budget", "4", "--epoch-s", "60", "--epochs", "2"
    )
    stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 0, stderr[-2000:]
    report = json.loads(stdout.splitlines()[-1])
    (row,) = report["leaderboard"]
    assert row["status"] == "timeout" and row["run_id"]
    assert _statuses(home) == {row["run_id"]: "timeout"}
    run = Store.open(home).get_run(row["run_id"])
    assert "did not stop in time" in (run.result.error or "")
