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
from mlsel.metalearn.cost import CostModel
from mlsel.metalearn.search import Trainer

__all__ = ["CostedTrainer", "SleepyTrainer", "TickClock", "score_of"]


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

    def cached_share(self, dataset: Dataset, config: Config) -> float:
        """Nothing is cached: a stand-in has no one-off work."""
        return 0.0

    def fit_final(self, dataset: Dataset, config: Config, folder: Path, *, run: RunResult) -> bool:
        """A stand-in keeps the run's own model."""
        return False

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
            began = time.time()
            time.sleep(self.epoch_s)
            if self.clock is not None:
                self.clock.tick()
            record = EpochRecord(
                epoch=epoch,
                train_loss=1.0 / epoch,
                score=score_of(config, epoch),
                # the epoch's seconds, as the real trainers report them: on the budget's
                # clock when the test drives one
                seconds=self.clock.step if self.clock is not None else time.time() - began,
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


class CostedTrainer:
    """A machine exactly as fast as the cost model says: each run moves ``clock`` by the
    model's predicted seconds (a frozen config's embeddings in its first epoch, once per
    backbone, as the embedding cache would), and logs the run like the real trainer.

    Its score rises with the epochs and is best for linear probes, so a search that
    spends its budget well keeps finding better trials.
    """

    def __init__(self, clock: TickClock) -> None:
        self.clock = clock
        self.embedded: set[tuple[str, int, str]] = set()
        self.model: CostModel | None = None

    def _done(self, config: Config) -> bool:
        from mlsel.kernel.catalogue import parts

        return all(
            (a, config.image_size, config.augment) in self.embedded for a in parts(config.arch)
        )

    def cached_share(self, dataset: Dataset, config: Config) -> float:
        return 1.0 if self._done(config) else 0.0

    def fit_final(self, dataset: Dataset, config: Config, folder: Path, *, run: RunResult) -> bool:
        """A stand-in keeps the run's own model."""
        return False

    def train(
        self,
        dataset: Dataset,
        config: Config,
        *,
        store: Store,
        device: str,
        on_epoch: EpochCallback,
    ) -> tuple[str, RunResult]:
        from mlsel.kernel.catalogue import parts

        if self.model is None:  # fitted once, on what the search's own model saw
            self.model = CostModel(device="cpu").fit(store.training_frame())
        cost = self.model.predict(
            config,
            store.get_profile(dataset.fingerprint),
            cached=self.cached_share(dataset, config),
        )
        self.embedded.update((a, config.image_size, config.augment) for a in parts(config.arch))
        start = self.clock()
        run_id = store.start_run(dataset.fingerprint, config, hardware={"device": device})
        curve: list[EpochRecord] = []
        status = "completed"
        epochs = 1 if config.finetune == "linear" else config.epochs
        bonus = 0.3 if config.finetune == "linear" else 0.0
        for epoch in range(1, epochs + 1):
            spent = cost.seconds_per_epoch + (cost.fixed_seconds if epoch == 1 else 0.0)
            for _ in range(max(1, round(spent / self.clock.step))):
                self.clock.tick()
            score = min(1.0, 0.5 * score_of(config, epoch) + bonus)
            record = EpochRecord(
                epoch=epoch,
                train_loss=1.0 / epoch,
                val_loss=1.0 - score + 1e-3 * len(config.arch),
                score=score,
                seconds=self.clock() - start,
            )
            store.log_epoch(run_id, record)
            curve.append(record)
            try:
                on_epoch(record)
            except StopRun as stop:
                status = stop.status
                break
        result = RunResult(
            status=status,
            score=max(r.score or 0.0 for r in curve),
            curve=tuple(curve),
            wall_seconds=self.clock() - start,
            seconds_per_epoch=cost.seconds_per_epoch,
        )
        store.finish_run(run_id, result)
        return run_id, result


_CHECKED: Trainer = SleepyTrainer()  # mypy checks that the stand-in satisfies the protocol


def _costed_is_a_trainer(trainer: CostedTrainer) -> Trainer:
    return trainer  # mypy checks that this stand-in satisfies the protocol too
