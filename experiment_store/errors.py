"""Every error mlsel raises on purpose, in one hierarchy.

::

    MlselError                 a user can act on it; the CLI prints it as one red line
    ├── StoreError             the experiment store cannot be opened, read or written
    │   └── StoreFormatError   the file at the store path is not an mlsel store
    ├── DatasetError           the dataset path, layout or content is unusable
    ├── TrainingError          a training run could not start or went wrong
    │   └── WeightsUnavailableError   pretrained weights asked for cannot be found
    ├── RankerError            the meta-model is missing, unfitted or mismatched
    └── ConfigError            a flag, setting or configuration value is invalid

The hierarchy lives in ``experiment_store`` because that package is the bottom of the
dependency graph: every other package may import it, and it imports none of them.
Each message says what was wrong, what value arrived, and what to do next.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatasetError",
    "MlselError",
    "RankerError",
    "StoreError",
    "StoreFormatError",
    "TrainingError",
    "WeightsUnavailableError",
]


class MlselError(Exception):
    """Base class of the errors a user can act on."""


class StoreError(MlselError):
    """The experiment store cannot be opened, read or written."""


class StoreFormatError(StoreError):
    """The file at the store path is not an mlsel store (corrupt or foreign)."""


class DatasetError(MlselError):
    """The dataset path, layout or content is unusable."""


class TrainingError(MlselError):
    """A training run could not start or went wrong."""


class WeightsUnavailableError(TrainingError):
    """Pretrained weights were asked for and cannot be found or downloaded."""


class RankerError(MlselError):
    """The meta-model is missing, unfitted or does not match the features."""


class ConfigError(MlselError):
    """A flag, setting or configuration value is invalid."""
