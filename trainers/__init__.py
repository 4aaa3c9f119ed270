"""Model zoo adapters and the training loop: train a ``Config`` on a ``Dataset``.

``train`` is the entry point: it validates the config, runs the backend (torchvision,
Ultralytics, timm), logs the run and its per-epoch curve to the store, and saves the
artifacts that ``load_model`` reads back. Importing this package does not import torch.
"""

from __future__ import annotations

from mlsel.trainers.base import STOP_STATUSES, Backend, EpochCallback, StopRun
from mlsel.trainers.cache import TensorCache
from mlsel.trainers.checks import OPTIMIZERS, SCHEDULES, check_config
from mlsel.trainers.metrics import classification_metrics
from mlsel.trainers.offline import (
    NORMALISATION,
    load_efficientnet_lite0,
    load_mobilenet_v2_backbone,
)
from mlsel.trainers.predictor import Predictor, load_model
from mlsel.trainers.run import get_backend, prepare, train

__all__ = [
    "NORMALISATION",
    "OPTIMIZERS",
    "SCHEDULES",
    "STOP_STATUSES",
    "Backend",
    "EpochCallback",
    "Predictor",
    "StopRun",
    "TensorCache",
    "check_config",
    "classification_metrics",
    "get_backend",
    "load_efficientnet_lite0",
    "load_mobilenet_v2_backbone",
    "load_model",
    "prepare",
    "train",
]
