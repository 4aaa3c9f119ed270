"""The kernel: what every mlsel package shares, and which imports none of them.

* :mod:`.errors`: the exceptions hierarchy and the one message template;
* :mod:`.records`: the typed records between packages (``Config``, ``RunResult``, ...);
* :mod:`.dataset`: the ``Dataset`` record (items, labels, splits, fingerprint);
* :mod:`.catalogue`: tasks, backends, allowed choices, architectures, shipped weights;
* :mod:`.backbones`: loaders of the shipped ImageNet backbones (torch imported inside);
* :mod:`.images`: the one image decoder, files to RGB pixels (Pillow imported inside);
* :mod:`.home`: every path of ``$MLSEL_HOME``, and the machine cache.

Dependencies point one way: ``cli -> metalearn -> {trainers, profilers,
experiment_store} -> kernel`` (``tests/test_layers.py`` checks it). Importing the kernel
is cheap: it needs only the standard library.
"""

from __future__ import annotations

from mlsel.kernel.dataset import Box, Dataset, DatasetItem
from mlsel.kernel.errors import (
    ConfigError,
    DatasetError,
    MlselError,
    RankerError,
    StopRun,
    StoreError,
    StoreFormatError,
    TrainingError,
    WeightsUnavailableError,
    invalid_parameter,
)
from mlsel.kernel.home import Home, machine_cache_dir, resolve_home
from mlsel.kernel.records import (
    Config,
    DatasetProfile,
    EpochCallback,
    EpochRecord,
    RunRecord,
    RunResult,
)

__all__ = [
    "Box",
    "Config",
    "ConfigError",
    "Dataset",
    "DatasetError",
    "DatasetItem",
    "DatasetProfile",
    "EpochCallback",
    "EpochRecord",
    "Home",
    "MlselError",
    "RankerError",
    "RunRecord",
    "RunResult",
    "StopRun",
    "StoreError",
    "StoreFormatError",
    "TrainingError",
    "WeightsUnavailableError",
    "invalid_parameter",
    "machine_cache_dir",
    "resolve_home",
]
