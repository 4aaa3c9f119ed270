"""How long a config takes and how much memory it needs, on this hardware.

A first-principles prior (training costs about three forward passes: FLOPs of the
architecture's card scaled by the image size, times the images per epoch, at a nominal
throughput of the device) is corrected by the store's runs on the same device kind:
the median ratio of measured to prior seconds per epoch, per architecture where it has
at least ``min_runs`` runs, else over every run. Peak memory works the same way.

Within a device kind, machines differ (a 2-core laptop, a 16-core server; one thread or
all of them): every run records its hardware, and :func:`hardware_key` names it. Where
the store holds ``min_runs`` runs of an architecture on this machine, their ratio is
used; else, where it holds ``min_runs`` runs of any architecture here, the device kind's
ratio is scaled by how much faster or slower this machine ran them. A GPU run never
corrects a CPU estimate, nor the reverse.

A classifier's frozen backbone (finetune ``linear`` or ``head``) costs one forward pass
per image and view, once (:mod:`mlsel.trainers.embeddings` keeps them): that is the
estimate's ``fixed_seconds``, scaled by the share of embeddings not cached yet. Its epochs
train a linear layer on embeddings and cost next to nothing. Only runs that train the
backbone correct the prior: such a run's epochs say nothing of the backbone's speed. A
detector with a frozen backbone is not one of them: every epoch runs the backbone
forward and trains the FPN and the head, so its epochs cost like any training run's.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsel.kernel.catalogue import FROZEN_MODES, architecture, parts
from mlsel.kernel.errors import RankerError
from mlsel.kernel.records import Config, DatasetProfile
from mlsel.metalearn._profile import profile_value
from mlsel.metalearn.cards import architecture_card

__all__ = [
    "CostEstimate",
    "CostModel",
    "detect_device",
    "embeds_once",
    "hardware_key",
    "this_hardware",
]

logger = logging.getLogger(__name__)
# Nominal sustained training throughput (GFLOP/s of forward FLOPs x 3) by device kind.
_THROUGHPUT = {"cpu": 40.0, "cuda": 4000.0, "mps": 800.0}
_DEFAULT_IMAGES = 1000.0
# Forward-only throughput (GFLOP/s) of a frozen backbone computing embeddings: ONNX Runtime
# on CPU (measured on 2 shared cores: EfficientNet-Lite0 at 224 px, 48 images/s), PyTorch
# with autocast on a GPU.
_EMBED_THROUGHPUT = {"cpu": 15.0, "cuda": 3000.0, "mps": 600.0}
# Augmented views kept per image by a frozen, augmented config (trainers.embeddings).
_AUGMENTED_VIEWS = 3
# A linear layer's pass over one embedding, in seconds (measured: ~1e-5 on 2 CPU cores).
_HEAD_SECONDS_PER_IMAGE = 2e-5
# Loading the backbones, the linear solver, saving the run.
_FROZEN_START_SECONDS = 2.0


def detect_device() -> str:
    """``cuda`` when an NVIDIA driver is present, else ``cpu`` (without importing torch)."""
    if os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi"):
        return "cuda"
    return "cpu"


def hardware_key(hardware: Mapping[str, Any]) -> str:
    """The machine a run's ``hardware`` record names: ``cuda NVIDIA H200`` or ``cpu x86_64,
    2 threads`` (the threads training used); ``?`` for what the record lacks."""
    device = str(hardware.get("device") or "?").split(":")[0]
    if device == "cuda":
        return f"cuda {hardware.get('gpu') or '?'}"
    return f"{device} {hardware.get('cpu') or '?'}, {hardware.get('torch_threads') or '?'} threads"


def this_hardware(device: str) -> str:
    """:func:`hardware_key` of this machine for ``device`` (``cpu`` or ``cuda``), as its
    training would record it (a CPU run uses :func:`~mlsel.kernel.cores.thread_budget`
    threads), found without importing torch."""
    from mlsel.kernel.cores import thread_budget

    if device == "cuda":
        return hardware_key({"device": "cuda", "gpu": _gpu_model()})
    cpu = platform.processor() or platform.machine()
    return hardware_key({"device": device, "cpu": cpu, "torch_threads": thread_budget()})


def _gpu_model() -> str | None:
    """The first GPU's model, as the NVIDIA driver names it (``None`` without one)."""
    from pathlib import Path

    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        for line in info.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model":
                return value.strip()
    return None


@dataclass(frozen=True)
class CostEstimate:
    """Predicted cost of one config on one dataset; ``basis`` says where it comes from."""

    seconds_per_epoch: float
    total_seconds: float
    peak_memory_mb: float
    basis: str = "prior"
    fixed_seconds: float = 0.0  # paid once, not per epoch (a frozen backbone's embeddings)


def embeds_once(config: Config) -> bool:
    """Whether ``config`` trains on cached embeddings: a classifier whose pretrained
    backbone is frozen. A detector's frozen backbone still runs every epoch."""
    if config.finetune not in FROZEN_MODES or config.pretrained is None:
        return False
    entry = architecture(config.arch)
    return entry is None or entry.task != "detect"


def _gflops(config: Config) -> tuple[float, float]:
    """Forward GFLOPs at the config's image size and millions of parameters, summed over
    the backbones of a concatenation."""
    gflops = params = 0.0
    for arch in parts(config.arch):
        card = architecture_card(arch)
        native = card.input_size if card and card.input_size else 224
        gflops += (card.gflops if card and card.gflops else 5.0) * (config.image_size / native) ** 2
        params += card.params_m if card and card.params_m else 25.0
    return gflops, params


def embedding_passes(config: Config, images: float) -> float:
    """Backbone passes a frozen config needs: each image once, each augmented view once."""
    views = 1 if config.augment == "none" else 1 + _AUGMENTED_VIEWS
    return images * views


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
        min_runs: runs of an architecture needed for its own correction factor, and
            runs on this machine needed for its own.
        hardware: this machine's :func:`hardware_key` (default: :func:`this_hardware`).
    """

    def __init__(
        self, device: str = "auto", min_runs: int = 3, hardware: str | None = None
    ) -> None:
        self.device = device
        self.min_runs = min_runs
        self.hardware = hardware

    def fit(self, frame: Any) -> CostModel:
        """Learn correction factors from the runs on this device kind (none: the prior)."""
        self.device_ = detect_device() if self.device == "auto" else self.device
        self.hardware_ = self.hardware or this_hardware(self.device_)
        self.time_ratio_: dict[str, float] = {}
        self.memory_ratio_: dict[str, float] = {}
        self.n_runs_ = 0
        # this machine's own ratios by architecture, and its speed against the device kind
        self.machine_ratio_: dict[str, float] = {}
        self.machine_speed_: float | None = None
        self.n_machine_runs_ = 0
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
        trained = [not embeds_once(config) for config in configs]
        mine = mine.filter(pl.Series(trained, dtype=pl.Boolean))
        configs = [config for config, keep in zip(configs, trained, strict=True) if keep]
        n_train = mine["n_train"].to_list() if "n_train" in mine.columns else [None] * mine.height
        peak_col = "peak_gpu_mb" if self.device_ == "cuda" else "peak_host_mb"
        peaks = mine[peak_col].to_list() if peak_col in mine.columns else [None] * mine.height
        machines = _machines(mine)
        times: dict[str, list[float]] = {}
        mems: dict[str, list[float]] = {}
        here: list[tuple[str, float]] = []  # (arch, ratio) of the runs on this machine
        for config, spe, n, peak, machine in zip(
            configs, mine["seconds_per_epoch"].to_list(), n_train, peaks, machines, strict=True
        ):
            if n is None or spe is None or spe <= 0:
                continue
            prior_s, prior_m = _prior(config, float(n), self.device_)
            times.setdefault(config.arch, []).append(spe / prior_s)
            times.setdefault("*", []).append(spe / prior_s)
            if machine == self.hardware_:
                here.append((config.arch, spe / prior_s))
            if peak is not None and peak > 0:
                mems.setdefault(config.arch, []).append(peak / prior_m)
                mems.setdefault("*", []).append(peak / prior_m)
        self.n_runs_ = len(times.get("*", []))
        self.time_ratio_ = self._medians(times)
        self.memory_ratio_ = self._medians(mems)
        self._learn_machine(here)

    def _medians(self, ratios: dict[str, list[float]]) -> dict[str, float]:
        return {
            k: float(np.median(v)) for k, v in ratios.items() if k == "*" or len(v) >= self.min_runs
        }

    def _learn_machine(self, here: list[tuple[str, float]]) -> None:
        """This machine's ratios by architecture and its speed: the median of its runs'
        ratios over the device kind's ratio of the same architecture."""
        self.n_machine_runs_ = len(here)
        if len(here) < self.min_runs:
            return
        by_arch: dict[str, list[float]] = {}
        for arch, ratio in here:
            by_arch.setdefault(arch, []).append(ratio)
        self.machine_ratio_ = {
            k: float(np.median(v)) for k, v in by_arch.items() if len(v) >= self.min_runs
        }
        speeds = [ratio / self.time_ratio_.get(arch, self.time_ratio_["*"]) for arch, ratio in here]
        self.machine_speed_ = float(np.median(speeds))

    def _time_ratio(self, config: Config) -> tuple[float | None, str]:
        """The time correction of ``config`` on this machine, and what it rests on."""
        own = self.machine_ratio_.get(config.arch)
        if own is not None:
            return own, f"{self.n_machine_runs_} runs on this machine"
        kind = self.time_ratio_.get(config.arch, self._ratio(config))
        if kind is None:
            return None, "prior"
        basis = f"{self.n_runs_} runs on {self.device_}"
        if self.machine_speed_ is not None:
            return kind * self.machine_speed_, f"{basis}, scaled to this machine"
        return kind, basis

    def predict(
        self, config: Config, profile: DatasetProfile | None, *, cached: float = 0.0
    ) -> CostEstimate:
        """Cost of ``config`` on ``profile``'s dataset (training images per epoch).

        Args:
            cached: share of a frozen config's embeddings already cached (0 to 1).
        """
        if not hasattr(self, "device_"):
            raise RankerError("This CostModel is not fitted yet: call fit(frame) first.")
        images = _images(
            config, profile_value(profile, "n_images"), profile_value(profile, "n_classes")
        )
        seconds, memory = _prior(config, images, self.device_)
        t, basis = self._time_ratio(config)
        m = self.memory_ratio_.get(config.arch, self.memory_ratio_.get("*"))
        seconds *= t if t is not None else 1.0
        memory *= m if m is not None else 1.0
        if embeds_once(config):
            # one forward pass per image and view, once; the training runs' correction is
            # for training steps under PyTorch, not for this
            gflops, _ = _gflops(config)
            forward = gflops / _EMBED_THROUGHPUT.get(self.device_, _EMBED_THROUGHPUT["cpu"])
            fixed = _FROZEN_START_SECONDS + forward * embedding_passes(config, images) * (
                1.0 - min(max(cached, 0.0), 1.0)
            )
            per_epoch = _HEAD_SECONDS_PER_IMAGE * images
            epochs = 1 if config.finetune == "linear" else max(config.epochs, 1)
            return CostEstimate(
                seconds_per_epoch=per_epoch,
                total_seconds=fixed + per_epoch * epochs,
                peak_memory_mb=memory,
                basis=basis,
                fixed_seconds=fixed,
            )
        total = seconds * max(config.epochs, 1) * 1.1  # validation passes and start-up
        return CostEstimate(
            seconds_per_epoch=seconds, total_seconds=total, peak_memory_mb=memory, basis=basis
        )

    def _ratio(self, config: Config) -> float | None:
        """The correction of a concatenation: the mean of its parts' (else every run's)."""
        found = [self.time_ratio_[a] for a in parts(config.arch) if a in self.time_ratio_]
        if len(parts(config.arch)) > 1 and found:
            return float(np.mean(found))
        return self.time_ratio_.get("*")


def _machines(frame: Any) -> list[str]:
    """:func:`hardware_key` of each row of a training frame (its ``hw_*`` columns)."""
    n = frame.height

    def column(name: str) -> list[Any]:
        return frame[name].to_list() if name in frame.columns else [None] * n

    return [
        hardware_key({"device": d, "cpu": c, "torch_threads": t, "gpu": g})
        for d, c, t, g in zip(
            column("device"), column("hw_cpu"), column("hw_threads"), column("hw_gpu"), strict=True
        )
    ]
