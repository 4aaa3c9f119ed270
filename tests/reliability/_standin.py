"""The stand-in trainer of the fault-injection tests (a module of its own, so that the
spawned workers of a search can unpickle it)."""

from __future__ import annotations

import os
import time

from mlsel.experiment_store import Store
from mlsel.kernel.dataset import Dataset
from mlsel.kernel.errors import StopRun
from mlsel.kernel.records import Config, EpochCallback, EpochRecord, RunResult

__all__ = ["SlowTrainer"]


class SlowTrainer:
    """Logs a run and its epochs like the real trainer, sleeping ``epoch_s`` an epoch."""

    def __init__(self, epoch_s: float, progress: str | None) -> None:
        self.epoch_s, self.progress = epoch_s, progress

    def train(
        self,
        dataset: Dataset,
        config: Config,
        *,
        store: Store,
        device: str,
        on_epoch: EpochCallback,
    ) -> tuple[str, RunResult]:
        run_id = store.start_run(dataset.fingerprint, config, hardware={"device": device})
        curve: list[EpochRecord] = []
        status = "completed"
        for epoch in range(1, config.epochs + 1):
            time.sleep(self.epoch_s)
            record = EpochRecord(epoch=epoch, score=round(0.1 * epoch + config.lr, 6))
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
            status=status, score=max(r.score or 0 for r in curve), curve=tuple(curve)
        )
        store.finish_run(run_id, result)
        return run_id, result
