"""Devices and memory: resolve ``auto``/``cpu``/``cuda:N``, describe the hardware,
and measure peak GPU memory and peak host memory (RSS, sampled in a thread)."""

from __future__ import annotations

import os
import platform
import re
import threading
from typing import TYPE_CHECKING

from mlsel.kernel.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "HostMemorySampler",
    "describe_hardware",
    "gpu_peak_mb",
    "library_versions",
    "reset_gpu_peak",
    "resolve_device",
]

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device for ``auto`` (first GPU when there is one), ``cpu`` or ``cuda:N``.

    Raises:
        ConfigError: the text is not a device name, or names a GPU that is not there.
    """
    import torch

    text = str(device).strip().lower()
    if not _DEVICE.match(text):
        raise ConfigError(
            f"The 'device' parameter of train must be 'auto', 'cpu' or 'cuda:N'. "
            f"Got {device!r} instead."
        )
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(text.partition(":")[2] or 0)
        if index >= count:
            raise ConfigError(
                f"The 'device' parameter of train names {device!r}, but this machine has "
                f"{count} CUDA GPU(s). Use --device cpu or one of cuda:0..cuda:{max(count - 1, 0)}."
            )
        return torch.device(f"cuda:{index}")
    if text == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("The 'device' parameter of train is 'mps', which is not available here.")
    return torch.device(text)


def describe_hardware(device: torch.device) -> dict[str, str]:
    """What the run ran on, for the store (``device``, ``cpu``, ``cpu_count``, ``gpu``...)."""
    import torch

    info = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count() or 0),
        "torch_threads": str(torch.get_num_threads()),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_count=str(torch.cuda.device_count()),
            gpu_memory_mb=str(round(props.total_memory / 2**20)),
        )
    return info


def library_versions() -> dict[str, str]:
    """Versions of mlsel and the training libraries that are already imported."""
    import sys
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for dist, module in (
        ("mlsel", None),
        ("torch", "torch"),
        ("torchvision", "torchvision"),
        ("ultralytics", "ultralytics"),
        ("timm", "timm"),
    ):
        if module is not None and module not in sys.modules:
            continue
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def reset_gpu_peak(device: torch.device) -> None:
    """Start a fresh peak-memory measurement on a CUDA device (no-op elsewhere)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def gpu_peak_mb(device: torch.device) -> float | None:
    """Peak memory allocated by torch on ``device`` since the last reset, in MiB."""
    import torch

    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


class HostMemorySampler:
    """Samples this process's resident memory in a daemon thread; ``peak_mb`` after stop.

    Use as a context manager. ``interval`` seconds between samples (the peak of very
    short spikes between two samples can be missed; the end value is always sampled).
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        import psutil

        proc = psutil.Process()
        while True:
            rss = proc.memory_info().rss / 2**20
            self.peak_mb = rss if self.peak_mb is None else max(self.peak_mb, rss)
            if self._stop.is_set():
                break
            self._stop.wait(self.interval)

    def __enter__(self) -> HostMemorySampler:
        self._thread = threading.Thread(target=self._sample, name="mlsel-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
