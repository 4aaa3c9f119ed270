"""Model zoo adapters and the training loop: train a ``Config`` on a ``Dataset``.

``train`` is the entry point: it validates the config, runs the backend (torchvision,
Ultralytics, timm), logs the run and its per-epoch curve to the store, and saves the
artifacts that ``load_model`` reads back. :class:`CachedTrainer` trains runs one after
another with one cache of decoded images (a search worker's trainer). Importing this
package does not import torch.
"""

from __future__ import annotations

from mlsel.trainers.base import Backend
from mlsel.trainers.cache import TensorCache
from mlsel.trainers.checks import check_config
from mlsel.trainers.metrics import classification_metrics
from mlsel.trainers.predictor import Predictor, load_model
from mlsel.trainers.run import CachedTrainer, get_backend, prepare, train

__all__ = [
    "Backend",
    "CachedTrainer",
    "Predictor",
    "TensorCache",
    "check_config",
    "classification_metrics",
    "get_backend",
    "load_model",
    "prepare",
    "train",
]
