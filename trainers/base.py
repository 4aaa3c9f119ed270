"""The backend contract: how a model family trains one ``Config`` on one ``Dataset``.

A backend (torchvision, Ultralytics, timm) implements :meth:`Backend.fit`. The contract:

* ``fit`` trains on ``dataset.split("train")`` and scores on ``dataset.split("val")``;
  the primary score is macro F1 (classification) or mAP50-95 (detection).
* after each epoch it calls ``on_epoch(EpochRecord)``; the callback may raise
  :class:`~mlsel.kernel.errors.StopRun` (``pruned`` or ``timeout``): the backend stops
  cleanly and returns a result with that status and the partial curve (best weights so
  far are kept).
* it never reports pretrained weights it did not load: a missing weight file raises
  :class:`~mlsel.kernel.errors.WeightsUnavailableError` before training.
* a diverging run (NaN loss) raises :class:`~mlsel.kernel.errors.TrainingError`;
  the caller (:func:`mlsel.trainers.train`) records it as failed.
* artifacts (best weights, class names, preprocessing, plots) go to ``artifact_dir``
  when one is given.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlsel.kernel.dataset import Dataset
    from mlsel.kernel.records import Config, EpochCallback, RunResult
    from mlsel.trainers.cache import TensorCache

__all__ = ["Backend"]


class Backend(ABC):
    """A family of models that can be trained by mlsel (see the module docstring)."""

    #: the ``Config.backend`` value this class serves.
    name: str = ""

    @abstractmethod
    def fit(
        self,
        dataset: Dataset,
        config: Config,
        device: str = "auto",
        on_epoch: EpochCallback | None = None,
        *,
        cache: TensorCache | None = None,
        weights: str | None = None,
        artifact_dir: str | None = None,
    ) -> RunResult:
        """Train ``config`` on ``dataset`` and return its result (see module docstring)."""

    def check(self, config: Config, task: str) -> None:  # noqa: B027 - optional hook
        """Raise ``ConfigError`` when ``config`` cannot run on this backend for ``task``."""

    def resolve_weights(self, config: Config, weights: str | None = None) -> str | None:
        """Where the weights of ``config.pretrained`` come from, without training.

        Returns a description (file path or source) or ``None`` for from-scratch runs.

        Raises:
            WeightsUnavailableError: the weights cannot be found or downloaded.
        """
        return None
