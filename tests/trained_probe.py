"""A real linear-probe run trained once per test module, shared by the export tests.

EfficientNet-Lite0's ImageNet features and a linear probe on 4 classes of real digits at
64 px: a few seconds on a CPU, and a model whose export must predict what it predicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlsel.experiment_store.store import Store
from mlsel.kernel.records import Config, DatasetProfile, RunRecord
from mlsel.profilers import read_dataset, write_sample
from mlsel.trainers import train

PROBE = Config(
    backend="torchvision",
    arch="efficientnet_lite0",
    finetune="linear",
    image_size=64,
    epochs=1,
    augment="none",
)


class TrainedProbe:
    """The run, its home and store, and its dataset (whose profile keeps its path)."""

    def __init__(self, home: Path, data: Path) -> None:
        self.home, self.data = home, data
        self.dataset = read_dataset(data)
        self.store = Store.open(home)
        self.run_id, self.result = train(self.dataset, PROBE, store=self.store, device="cpu")
        self.store.save_profile(
            DatasetProfile(
                fingerprint=self.dataset.fingerprint,
                task="classify",
                features={"n_images": 48.0, "n_classes": 4.0},
                profiler_version="test",
                name=self.dataset.name,
                path=str(data),
            )
        )
        self.run_dir = Path(self.result.artifact_dir)
        self.val = [Path(item.path) for item in self.dataset.split("val")]

    @property
    def record(self) -> RunRecord:
        return self.store.get_run(self.run_id)


@contextmanager
def trained_probe(root: Path, cache: Path) -> Iterator[TrainedProbe]:
    """Train the probe under ``root`` with the test session's machine cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSEL_CACHE_DIR", str(cache))
        patch.setenv("MLSEL_OFFLINE", "1")
        patch.setenv("MLSEL_NO_BUNDLED", "1")
        data = write_sample("digits", root / "digits", classes=4, per_class=12)
        yield TrainedProbe(root / "home", data)
