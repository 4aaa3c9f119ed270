"""The seam between a search and what trains its trials: the :class:`Trainer` protocol.

mlsel's own trainer is :class:`mlsel.trainers.CachedTrainer`; tests pass a fast
stand-in that satisfies the same protocol (mypy checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from mlsel.experiment_store import Store
    from mlsel.kernel.dataset import Dataset
    from mlsel.kernel.records import Config, EpochCallback, RunResult

__all__ = ["Trainer"]


class Trainer(Protocol):
    """Trains one config of a search on the worker's device and logs it.

    What an implementation must guarantee:

    * ``train`` logs the run to ``store`` (started, every epoch as it ends, finished) and
      returns ``(run_id, result)``. A run that fails after it started is returned with
      status ``failed`` and its error, not raised.
    * After each epoch it calls ``on_epoch``; the callback may raise
      :class:`~mlsel.kernel.errors.StopRun`, and the run then ends with that status
      (``pruned`` or ``timeout``) and the curve so far.
    * What cannot start at all (an invalid config, weights not at hand) raises an
      :class:`~mlsel.kernel.errors.MlselError` before any run is logged.
    * It may keep caches across calls (one worker trains many trials), and it is pickled
      to reach a worker process, so it holds no open resources until it first trains.
    """

    def train(
        self,
        dataset: Dataset,
        config: Config,
        *,
        store: Store,
        device: str,
        on_epoch: EpochCallback,
    ) -> tuple[str, RunResult]:
        """Train ``config`` on ``dataset`` (see the class docstring)."""
        ...

    def cached_share(self, dataset: Dataset, config: Config) -> float:
        """The share (0 to 1) of ``config``'s one-off work already done and kept, e.g. the
        embeddings of a frozen backbone: the cost model predicts the rest."""
        ...

    def fit_final(self, dataset: Dataset, config: Config, folder: Path, *, run: RunResult) -> bool:
        """Refit the search's kept ``config`` on train and val together into ``folder``
        (saved as a run's model is, with ``run``'s metrics, the held-out ones), once
        selection is done. Returns ``False``, and leaves ``folder`` alone, for a config it
        does not refit."""
        ...
