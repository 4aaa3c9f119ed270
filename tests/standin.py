"""A fast stand-in trainer and a clock that tests drive, shared by the search's tests.

:class:`SleepyTrainer` logs real runs and curves to the real store, like the real
trainer, but "trains" by sleeping, with a score that depends only on the learning rate.
It lives in a module of its own so that the spawned workers of a search can unpickle it.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from mlsel.experiment_store import Store
from mlsel.kernel.dataset import Dataset
from mlsel.kernel.errors import StopRun
from mlsel.kernel.records import Config, EpochCallback, EpochRecord, RunResult
from mlsel.metalearn.search import Trainer

__all__ = ["SleepyTrainer", "TickClock", "score_of"]


class TickClock:
    """A clock that moves only when the stand-in trainer ends an epoch: ``step`` seconds a
    tick, the ticks counted as bytes appended to a file that every process shares."""

    def __init__(self, path: Path, step: float) -> None:
        self.path, self.step = str(path), step
        Path(path).touch()

    def __call__(self) -> float:
        return os.path.getsize(self.path) * self.step

    def tick(self) -> None:
        with open(self.path, "ab") as handle:  # one append is atomic across processes
            handle.write(b".")


def score_of(config: Config, epoch: int) -> float:
    """The stand-in's score: best near lr 3e-3, rising with the epochs."""
    quality = max(0.05, 1.0 - abs(math.log10(config.lr) + 2.5) / 3.0)
    return round(quality * math.sqrt(epoch / config.epochs), 6)


class SleepyTrainer:
    """Sleeps ``epoch_s`` an epoch and logs the run and each epoch like the real trainer;
    ticks ``clock`` an epoch, and appends ``<pid> <run_id> <epoch>`` to ``progress``."""

    def __init__(
        self, epoch_s: float = 0.02, clock: TickClock | None = None, progress: str | None = None
    ) -> None:
        self.epoch_s, self.clock, self.progress = epoch_s, clock, progress

    def train(
        self,
        dataset: Dataset,
        config: Config,
        *,
        store: Store,
        device: str,
        on_epoch: EpochCallback,
    ) -> tuple[str, RunResult]:
        start = time.time()
        run_id = store.start_run(dataset.fingerprint, config, hardware={"device": device})
        curve: list[EpochRecord] = []
        status = "completed"
        for epoch in range(1, config.epochs + 1):
            time.sleep(self.epoch_s)
            if self.clock is not None:
                self.clock.tick()
            record = EpochRecord(
                epoch=epoch,
                train_loss=1.0 / epoch,
                score=score_of(config, epoch),
                seconds=time.time() - start,
            )
            store.log_epoch(run_id, record)
            curve.append(record)
            if self.progress:
                with open(self.progress, "a") as handle:
                    handle.write(f"{os.getpid()} {run_id} {epoch}\n")
            try:
                on_epoch(record)
            except StopRun as stop:
                status = stop.status
                break
        result = RunResult(
            status=status,
            score=curve[-1].score,
            curve=tuple(curve),
            wall_seconds=time.time() - start,
        )
        store.finish_run(run_id, result)
        return run_id, result


_CHECKED: Trainer = SleepyTrainer()  # mypy checks that the stand-in satisfies the protocol
