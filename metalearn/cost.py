"""How long a config takes and how much memory it needs, on this hardware.

A first-principles prior (training costs about three forward passes: FLOPs of the
architecture's card scaled by the image size, times the images per epoch, at a nominal
throughput of the device) is corrected by the store's runs on the same device kind:
the median ratio of measured to prior seconds per epoch, per architecture where it has
at least ``min_runs`` runs, else over every run. Peak memory works the same way.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsel.kernel.errors import RankerError
from mlsel.kernel.records import Config, DatasetProfile
from mlsel.metalearn._profile import profile_value
from mlsel.metalearn.cards import architecture_card

__all__ = ["CostEstimate", "CostModel", "detect_device"]

logger = logging.getLogger(__name__)
# Nominal sustained training throughput (GFLOP/s of forward FLOPs x 3) by device kind.
_THROUGHPUT = {"cpu": 40.0, "cuda": 4000.0, "mps": 800.0}
_DEFAULT_IMAGES = 1000.0


def detect_device() -> str:
    """``cuda`` when an NVIDIA driver is present, else ``cpu`` (without importing torch)."""
    if os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi"):
        return "cuda"
    return "cpu"


@dataclass(frozen=True)
class CostEstimate:
    """Predicted cost of one config on one dataset; ``basis`` says where it comes from."""

    seconds_per_epoch: float
    total_seconds: float
    peak_memory_mb: float
    basis: str = "prior"


def _gflops(config: Config) -> tuple[float, float]:
    card = architecture_card(config.arch)
    gflops = card.gflops if card and card.gflops else 5.0
    native = card.input_size if card and card.input_size else 224
    params = card.params_m if card and card.params_m else 25.0
    return gflops * (config.image_size / native) ** 2, params


def _images(config: Config, n_images: float | None, n_classes: float | None) -> float:
    n = n_images if n_images and n_images > 0 else _DEFAULT_IMAGES
    if config.min_per_class and n_classes:
        n = max(n, n_classes * config.min_per_class)
    return n


def _prior(config: Config, images: float, device: str) -> tuple[float, float]:
    gflops, params = _gflops(config)
    factor = (
        1.0
        if config.finetune == "full" or config.pretrained is None
        else (0.6 if config.finetune == "partial" else 0.4)
    )
    seconds = 3.0 * factor * gflops * images / _THROUGHPUT.get(device, _THROUGHPUT["cpu"])
    # weights + gradients + two Adam moments (fp32), plus activations of one batch
    memory = 200.0 + params * 16.0 + config.batch_size * gflops * 12.0
    return seconds, memory


class CostModel:
    """Predicts seconds per epoch and peak memory; fit on ``Store.training_frame()``.

    Args:
        device: ``cpu``, ``cuda`` or ``auto`` (:func:`detect_device`).
        min_runs: runs of an architecture needed for its own correction factor.
    """

    def __init__(self, device: str = "auto", min_runs: int = 3) -> None:
        self.device = device
        self.min_runs = min_runs

    def fit(self, frame: Any) -> CostModel:
        """Learn correction factors from the runs on this device kind (none: the prior)."""
        self.device_ = detect_device() if self.device == "auto" else self.device
        self.time_ratio_: dict[str, float] = {}
        self.memory_ratio_: dict[str, float] = {}
        self.n_runs_ = 0
        needed = {"seconds_per_epoch", "cfg_arch", "device"}
        if frame.height and needed <= set(frame.columns):
            self._learn(frame)
        return self

    def _learn(self, frame: Any) -> None:
        import polars as pl

        mine = frame.filter(
            pl.col("device").cast(pl.Utf8).str.starts_with(self.device_)
            & pl.col("seconds_per_epoch").is_not_null()
        )
        if mine.height == 0:
            return
        from mlsel.metalearn.features import configs_from_frame

        configs = configs_from_frame(mine)
        n_train = mine["n_train"].to_list() if "n_train" in mine.columns else [None] * mine.height
        peak_col = "peak_gpu_mb" if self.device_ == "cuda" else "peak_host_mb"
        peaks = mine[peak_col].to_list() if peak_col in mine.columns else [None] * mine.height
        times: dict[str, list[float]] = {}
        mems: dict[str, list[float]] = {}
        for config, spe, n, peak in zip(
            configs, mine["seconds_per_epoch"].to_list(), n_train, peaks, strict=True
        ):
            if n is None or spe is None or spe <= 0:
                continue
            prior_s, prior_m = _prior(config, float(n), self.device_)
            times.setdefault(config.arch, []).append(spe / prior_s)
            times.setdefault("*", []).append(spe / prior_s)
            if peak is not None and peak > 0:
                mems.setdefault(config.arch, []).append(peak / prior_m)
                mems.setdefault("*", []).append(peak / prior_m)
        self.n_runs_ = len(times.get("*", []))
        self.time_ratio_ = {
            k: float(np.median(v)) for k, v in times.items() if k == "*" or len(v) >= self.min_runs
        }
        self.memory_ratio_ = {
            k: float(np.median(v)) for k, v in mems.items() if k == "*" or len(v) >= self.min_runs
        }

    def predict(self, config: Config, profile: DatasetProfile | None) -> CostEstimate:
        """Cost of ``config`` on ``profile``'s dataset (training images per epoch)."""
        if not hasattr(self, "device_"):
            raise RankerError("This CostModel is not fitted yet: call fit(frame) first.")
        images = _images(
            config, profile_value(profile, "n_images"), profile_value(profile, "n_classes")
        )
        seconds, memory = _prior(config, images, self.device_)
        t = self.time_ratio_.get(config.arch, self.time_ratio_.get("*"))
        m = self.memory_ratio_.get(config.arch, self.memory_ratio_.get("*"))
        basis = "prior" if t is None else f"{self.n_runs_} runs on {self.device_}"
        seconds *= t if t is not None else 1.0
        memory *= m if m is not None else 1.0
        total = seconds * max(config.epochs, 1) * 1.1  # validation passes and start-up
        return CostEstimate(
            seconds_per_epoch=seconds, total_seconds=total, peak_memory_mb=memory, basis=basis
        )
