"""Which devices a search trains on: ``--gpus all | N | 0,2 | cpu | cpu:N``.

One worker process per slot, one trial per slot at a time. A GPU slot pins its worker
with ``CUDA_VISIBLE_DEVICES`` (set in the worker before torch is imported), so the
trainer inside sees exactly one device, ``cuda:0``. The CPU slot hides every GPU and
gives its worker all cores; ``cpu:N`` makes N CPU workers that share the cores, standing
in for GPUs where there are none (tests, laptops).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from mlsel.kernel.cores import thread_budget
from mlsel.kernel.errors import ConfigError

__all__ = ["DeviceSlot", "gpu_ids", "parse_gpus"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceSlot:
    """One worker's device.

    Attributes:
        index: the worker's number (0, 1, ...).
        label: what the user reads (``cuda:2``, ``cpu``, ``cpu#1``).
        device: the device the trainer gets inside the worker (``cuda:0`` or ``cpu``).
        cuda_visible: value of ``CUDA_VISIBLE_DEVICES`` in the worker ("" hides GPUs).
        threads: torch intra-op threads for the worker.
    """

    index: int
    label: str
    device: str
    cuda_visible: str
    threads: int

    @property
    def is_gpu(self) -> bool:
        return self.device.startswith("cuda")


def gpu_ids() -> list[str]:
    """Physical ids of the GPUs this process may use (honours ``CUDA_VISIBLE_DEVICES``)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() != "":
        ids = [part.strip() for part in visible.split(",") if part.strip()]
        return ids[:count]
    return [str(i) for i in range(count)]


def _cpu_slots(n: int) -> list[DeviceSlot]:
    # OMP_NUM_THREADS=1 keeps a search to one core, as it keeps torch and ONNX Runtime
    threads = max(1, thread_budget() // n)
    label = "cpu" if n == 1 else "cpu#{}"
    return [
        DeviceSlot(i, label.format(i), "cpu", cuda_visible="", threads=threads) for i in range(n)
    ]


def _gpu_slots(ids: list[str]) -> list[DeviceSlot]:
    threads = max(1, thread_budget() // max(1, len(ids)))
    return [
        DeviceSlot(i, f"cuda:{gid}", "cuda:0", cuda_visible=gid, threads=threads)
        for i, gid in enumerate(ids)
    ]


def parse_gpus(spec: str, available: list[str] | None = None) -> tuple[list[DeviceSlot], str]:
    """Turn a ``--gpus`` value into worker slots.

    Args:
        spec: ``all``, a count (``2``), a list of GPU indices (``0,2``), ``cpu`` or
            ``cpu:N`` (N CPU workers).
        available: physical GPU ids (default: :func:`gpu_ids`), for tests.

    Returns:
        The slots, and a note for the user ("" when the request was met as asked).

    Raises:
        ConfigError: the spec is malformed or names GPUs this machine does not have.
    """
    text = spec.strip().lower()
    if text == "cpu":
        return _cpu_slots(1), ""
    if text.startswith("cpu:"):
        workers = text[4:]
        if not workers.isdigit() or int(workers) < 1:
            raise ConfigError(
                f"The 'gpus' parameter of run takes cpu:N with N >= 1 CPU workers. "
                f"Got {spec!r} instead."
            )
        return _cpu_slots(int(workers)), ""
    ids = gpu_ids() if available is None else list(available)
    if text == "all":
        if not ids:
            note = "no GPU found: training on the CPU, one trial at a time."
            logger.warning(note)
            return _cpu_slots(1), note
        return _gpu_slots(ids), ""
    if text.isdigit():
        count = int(text)
        if count < 1 or count > len(ids):
            raise ConfigError(
                f"--gpus {spec} asks for {count} GPU(s) but this machine has {len(ids)}. "
                "Use --gpus all, a count up to the number of GPUs, or --gpus cpu."
            )
        return _gpu_slots(ids[:count]), ""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise ConfigError(
            f"The 'gpus' parameter of run must be all, a count, GPU indices such as 0,2, "
            f"cpu or cpu:N. Got {spec!r} instead."
        )
    wanted = [int(p) for p in parts]
    bad = [i for i in wanted if i >= len(ids)]
    if bad:
        raise ConfigError(
            f"--gpus {spec} names GPU index(es) {bad} but this machine has {len(ids)} "
            f"GPU(s) (indices 0..{len(ids) - 1}). Check nvidia-smi or use --gpus all."
        )
    return _gpu_slots([ids[i] for i in dict.fromkeys(wanted)]), ""
