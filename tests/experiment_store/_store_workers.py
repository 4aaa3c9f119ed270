"""Child-process bodies for the reliability tests (spawned, so importable by name)."""

from __future__ import annotations

import time
from pathlib import Path

from mlsel.experiment_store import Store
from mlsel.kernel import Config, EpochRecord, RunResult

COMPLETED_BEFORE_KILL = 3


def log_many(path: str, worker: int, n_runs: int, start) -> None:  # noqa: ANN001
    """Log ``n_runs`` runs (every 10th through start/epoch/finish) once ``start`` is set."""
    store = Store.at(path)
    start.wait(30)
    for i in range(n_runs):
        config = Config(backend="torchvision", arch="resnet18", seed=worker * 1000 + i)
        if i % 10 == 0:
            run_id = store.start_run(f"fp-{worker}", config)
            store.log_epoch(run_id, EpochRecord(0, score=0.1))
            store.finish_run(run_id, RunResult("completed", score=i / n_runs))
        else:
            store.log_run(f"fp-{worker}", config, RunResult("completed", score=i / n_runs))


def log_then_hang(path: str, ready_file: str) -> None:
    """Log some completed runs, start one more, and log its epochs until killed."""
    store = Store.at(path)
    for i in range(COMPLETED_BEFORE_KILL):
        config = Config(backend="torchvision", arch="resnet18", seed=i)
        store.log_run("fp-kill", config, RunResult("completed", score=0.5 + i / 10))
    run_id = store.start_run("fp-kill", Config(backend="torchvision", arch="vgg11"))
    epoch = 0
    while True:
        store.log_epoch(run_id, EpochRecord(epoch, train_loss=1.0 / (epoch + 1), score=0.1))
        epoch += 1
        if epoch == 2:
            Path(ready_file).write_text(run_id)
        time.sleep(0.002)
