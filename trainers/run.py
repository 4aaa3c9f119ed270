"""``train``: the public entry point that runs a backend and logs the run to the store.

Every run is logged: started before the first epoch, each epoch committed as it ends
(a killed process leaves its curve), finished as completed, pruned, timeout or failed
(with the error text). Invalid configs and missing weights are raised before a run
is started, so they do not pollute the store with runs that never trained.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import TYPE_CHECKING

from mlsel.kernel.errors import MlselError, StopRun, TrainingError, invalid_parameter
from mlsel.kernel.home import Home
from mlsel.kernel.records import Config, EpochCallback, EpochRecord, RunResult
from mlsel.trainers.base import Backend
from mlsel.trainers.checks import check_config

if TYPE_CHECKING:
    from pathlib import Path

    from mlsel.experiment_store.store import Store
    from mlsel.kernel.dataset import Dataset
    from mlsel.trainers.cache import TensorCache

__all__ = ["CachedTrainer", "get_backend", "prepare", "train"]

logger = logging.getLogger(__name__)


def get_backend(name: str) -> Backend:
    """The backend serving ``Config.backend == name``.

    Raises:
        ConfigError: no such backend.
    """
    from mlsel.trainers.torch_backend import TimmBackend, TorchvisionBackend
    from mlsel.trainers.ultralytics_backend import UltralyticsBackend

    backends: dict[str, type[Backend]] = {
        "torchvision": TorchvisionBackend,
        "timm": TimmBackend,
        "ultralytics": UltralyticsBackend,
    }
    if name not in backends:
        raise invalid_parameter("backend", "train", f"one of {sorted(backends)}", name)
    return backends[name]()


def prepare(dataset: Dataset, config: Config, *, weights: str | None = None) -> Backend:
    """Validate ``config`` for ``dataset`` and find its weights, without training.

    Raises:
        ConfigError: an invalid field, or a config the dataset's task cannot use.
        WeightsUnavailableError: pretrained weights that cannot be found.
    """
    check_config(config)
    backend = get_backend(config.backend)
    backend.check(config, dataset.task)
    source = backend.resolve_weights(config, weights)
    logger.debug("weights of %s/%s: %s", config.backend, config.arch, source or "none")
    return backend


def train(
    dataset: Dataset,
    config: Config,
    *,
    store: Store | None = None,
    device: str = "auto",
    on_epoch: EpochCallback | None = None,
    cache: TensorCache | None = None,
    source: str = "local",
    weights: str | None = None,
    raise_errors: bool = True,
) -> tuple[str, RunResult]:
    """Train ``config`` on ``dataset``, log the run, and return ``(run_id, result)``.

    Args:
        dataset: a read dataset (``mlsel.profilers.read_dataset``).
        config: what to train; validated here.
        store: where to log (default: ``Store.open()`` of ``$MLSEL_HOME``).
        device: ``auto``, ``cpu`` or ``cuda:N``.
        on_epoch: called with each :class:`EpochRecord` after it is logged; it may raise
            :class:`StopRun` to end the run as ``pruned`` or ``timeout``.
        cache: decoded images to reuse across runs (the trials of one search).
        source: provenance recorded with the run.
        weights: explicit weights file for ``pretrained`` (``--weights FILE``).
        raise_errors: re-raise a failed run's error (as ``TrainingError`` unless it is
            already an mlsel error) after recording it; ``False`` returns the failed result.

    Raises:
        ConfigError, WeightsUnavailableError: before any run is logged.
        TrainingError: the run failed (recorded as failed first), if ``raise_errors``.
    """
    from mlsel.experiment_store.store import Store
    from mlsel.trainers.devices import describe_hardware, library_versions, resolve_device

    backend = prepare(dataset, config, weights=weights)
    dev = resolve_device(device)
    store = store if store is not None else Store.open()
    run_id = store.start_run(
        dataset.fingerprint,
        config,
        source=source,
        hardware=describe_hardware(dev),
        versions=library_versions(),
        dataset=(dataset.name, dataset.task, dataset.root),
    )
    artifact_dir = Home.of_store(store.path).run(run_id)
    curve: list[EpochRecord] = []

    def log_epoch(record: EpochRecord) -> None:
        store.log_epoch(run_id, record)
        curve.append(record)
        if on_epoch is not None:
            on_epoch(record)

    started = time.perf_counter()
    try:
        result = backend.fit(
            dataset,
            config,
            str(dev),
            log_epoch,
            cache=cache,
            weights=weights,
            artifact_dir=str(artifact_dir),
        )
    except (Exception, StopRun) as exc:  # every failure is recorded before it propagates
        logger.debug("run %s failed:\n%s", run_id, traceback.format_exc())
        error = f"{type(exc).__name__}: {exc}"
        failed = RunResult(
            status="failed",
            curve=tuple(curve),
            wall_seconds=time.perf_counter() - started,
            hardware=describe_hardware(dev),
            versions=library_versions(),
            error=error,
            artifact_dir=str(artifact_dir) if artifact_dir.exists() else None,
        )
        store.finish_run(run_id, failed)
        if not raise_errors:
            return run_id, failed
        if isinstance(exc, MlselError):
            raise
        raise TrainingError(f"Run {run_id} of {config.arch} failed: {error}") from exc
    store.finish_run(run_id, result)
    logger.info("run %s %s: score %s", run_id, result.status, result.score)
    return run_id, result


class CachedTrainer:
    """Trains runs one after another with one cache of decoded images: a search worker's
    trainer (it satisfies ``mlsel.metalearn.search.Trainer``).

    A run that fails once started is returned as ``failed``, not raised; an invalid
    config or missing weights raise before any run is logged. The cache stays in the
    process that filled it: a pickled trainer arrives empty.

    Args:
        max_cache_bytes: decoded images kept before the least recently used are dropped.
    """

    def __init__(self, max_cache_bytes: int = 4 * 2**30) -> None:
        self.max_cache_bytes = max_cache_bytes
        self._cache: TensorCache | None = None

    def __getstate__(self) -> dict[str, int]:
        return {"max_cache_bytes": self.max_cache_bytes}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.max_cache_bytes = state["max_cache_bytes"]
        self._cache = None

    @property
    def cache(self) -> TensorCache:
        """The decoded images of this trainer's runs so far."""
        if self._cache is None:
            from mlsel.trainers.cache import TensorCache

            self._cache = TensorCache(self.max_cache_bytes)
        return self._cache

    def cached_share(self, dataset: Dataset, config: Config) -> float:
        """The share of ``config``'s embeddings this trainer (or an earlier run, on disk)
        has computed already; 0 for a config that trains its backbone."""
        from mlsel.trainers.frozen import cached_share

        return cached_share(dataset, config, self.cache.embeddings)

    def fit_final(self, dataset: Dataset, config: Config, folder: Path, *, run: RunResult) -> bool:
        """Refit a kept linear probe on train + val into ``folder`` (see
        :meth:`~mlsel.trainers.torch_backend.TorchBackend.fit_final`); other configs are
        not refitted: their fit costs a run, and their epochs were chosen on val."""
        from mlsel.trainers.torch_backend import TorchBackend

        backend = get_backend(config.backend)
        from mlsel.kernel.catalogue import architecture

        found = architecture(config.arch)
        detector = found is not None and found.task == "detect"
        if config.finetune != "linear" or detector or not isinstance(backend, TorchBackend):
            return False
        backend.fit_final(
            dataset,
            config,
            folder,
            metrics=dict(run.metrics),
            confusion=run.confusion,
            cache=self.cache,
        )
        return True

    def train(
        self,
        dataset: Dataset,
        config: Config,
        *,
        store: Store,
        device: str,
        on_epoch: EpochCallback,
    ) -> tuple[str, RunResult]:
        """Train ``config`` on ``dataset`` and log it to ``store`` (see :func:`train`)."""
        return train(
            dataset,
            config,
            store=store,
            device=device,
            on_epoch=on_epoch,
            cache=self.cache,
            raise_errors=False,
        )
