"""PyTorch classification backends: torchvision's zoo and (optional) timm.

Both build a :class:`~mlsel.trainers.zoo.Network` and share :func:`run_loop`; this
module adds devices, memory measurement, the CUDA out-of-memory retry, metrics and
the saved model.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlsel.kernel.errors import ConfigError, TrainingError
from mlsel.kernel.records import Config, EpochCallback, RunResult
from mlsel.trainers.base import Backend
from mlsel.trainers.devices import (
    HostMemorySampler,
    describe_hardware,
    gpu_peak_mb,
    library_versions,
    reset_gpu_peak,
    resolve_device,
)

if TYPE_CHECKING:
    from mlsel.kernel.dataset import Dataset
    from mlsel.trainers.cache import TensorCache
    from mlsel.trainers.zoo import Network

__all__ = ["MODEL_FORMAT", "TimmBackend", "TorchBackend", "TorchvisionBackend"]

logger = logging.getLogger(__name__)

MODEL_FORMAT = "mlsel-torch-classifier/1"


class TorchBackend(Backend):
    """Common fit of the PyTorch classifiers; subclasses say how to build a network."""

    def build(
        self,
        config: Config,
        num_classes: int,
        *,
        pretrained: str | None,
        weights: str | None = None,
    ) -> Network:
        """The network of ``config`` (``pretrained=None``: random init, for loading)."""
        raise NotImplementedError

    def check(self, config: Config, task: str) -> None:
        if task != "classify":
            raise ConfigError(
                f"The {self.name} backend trains classifiers; dataset task is {task!r}. "
                "Use backend 'ultralytics' with arch yolo11n or yolo11s for detection."
            )

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
        import torch

        from mlsel.trainers.cache import TensorCache
        from mlsel.trainers.loop import run_loop
        from mlsel.trainers.metrics import classification_metrics

        self.check(config, dataset.task)
        dev = resolve_device(device)
        cache = cache if cache is not None else TensorCache()
        started = time.perf_counter()
        batch, notes = config.batch_size, dict[str, str]()
        with HostMemorySampler() as memory:
            reset_gpu_peak(dev)
            train = cache.get(dataset, config.image_size, "train")
            val = cache.get(dataset, config.image_size, "val")
            while True:
                net = self.build(
                    config, dataset.num_classes, pretrained=config.pretrained, weights=weights
                )
                try:
                    outcome = run_loop(net, train, val, config, dev, on_epoch, batch_size=batch)
                    break
                except torch.cuda.OutOfMemoryError:
                    if dev.type != "cuda" or batch <= 1 or notes:
                        raise
                    del net
                    torch.cuda.empty_cache()
                    notes["oom_retry"] = (
                        f"CUDA out of memory at batch {batch}; retried at {batch // 2}"
                    )
                    logger.warning(notes["oom_retry"])
                    batch //= 2
        if outcome.val_scores is None:  # no epoch ended: the loop raises before that
            raise TrainingError(f"{config.arch} ended before its first epoch was scored.")
        metrics, confusion = classification_metrics(val[1].numpy(), outcome.val_scores)
        metrics["batch_size_used"] = float(batch)
        metrics["epochs_run"] = float(len(outcome.curve))
        hardware = {
            **describe_hardware(dev),
            **notes,
            "features_cached": str(outcome.features_cached).lower(),
            "weights": net.pretrained_from or "none",
        }
        if artifact_dir is not None:
            self._save(
                Path(artifact_dir),
                net,
                outcome.best_state,
                dataset,
                config,
                metrics,
                confusion,
                outcome.curve,
            )
        wall = time.perf_counter() - started
        return RunResult(
            status=outcome.status,
            score=metrics["f1_macro"],
            metrics=metrics,
            confusion=tuple(tuple(int(v) for v in row) for row in confusion),
            curve=tuple(outcome.curve),
            wall_seconds=wall,
            seconds_per_epoch=outcome.train_seconds / max(len(outcome.curve), 1),
            peak_gpu_mb=gpu_peak_mb(dev),
            peak_host_mb=memory.peak_mb,
            hardware=hardware,
            versions=library_versions(),
            artifact_dir=artifact_dir,
        )

    def _save(
        self,
        folder: Path,
        net: Network,
        state: dict | None,
        dataset: Dataset,
        config: Config,
        metrics: dict,
        confusion,
        curve: list,
    ) -> None:  # noqa: ANN001
        import torch

        from mlsel.trainers.artifacts import write_atomically, write_run_files

        folder.mkdir(parents=True, exist_ok=True)
        saved = {
            "format": MODEL_FORMAT,
            "backend": self.name,
            "arch": config.arch,
            "num_classes": dataset.num_classes,
            "image_size": config.image_size,
            "state_dict": state,
        }
        write_atomically(folder / "model.pt", lambda tmp: torch.save(saved, tmp))
        write_run_files(
            folder,
            config=config,
            classes=dataset.classes,
            preprocessing={
                "image_size": config.image_size,
                "resize": "bilinear, square",
                "mode": "RGB",
                "scale": 1 / 255,
                "mean": list(net.mean),
                "std": list(net.std),
            },
            metrics=metrics,
            confusion=confusion,
            curve=curve,
        )


class TorchvisionBackend(TorchBackend):
    """torchvision classifiers, mlsel's ``small_cnn`` and the offline ImageNet models."""

    name = "torchvision"

    def check(self, config: Config, task: str) -> None:
        from mlsel.trainers.zoo import _check_arch

        super().check(config, task)
        _check_arch(config.arch, config.image_size, config.pretrained is not None)

    def build(
        self,
        config: Config,
        num_classes: int,
        *,
        pretrained: str | None,
        weights: str | None = None,
    ) -> Network:
        from mlsel.trainers.zoo import build_torchvision

        return build_torchvision(
            config.arch,
            num_classes,
            pretrained=pretrained,
            image_size=config.image_size,
            weights=weights,
        )

    def resolve_weights(self, config: Config, weights: str | None = None) -> str | None:
        from mlsel.kernel.catalogue import SHIPPED_WEIGHTS
        from mlsel.trainers import weights as wts
        from mlsel.trainers.zoo import _check_arch

        _check_arch(config.arch, config.image_size, config.pretrained is not None)
        if config.pretrained is None:
            return None
        explicit = weights or (config.pretrained if config.pretrained != "imagenet" else None)
        if explicit:
            wts.load_state_dict_file(explicit)
            return str(explicit)
        if config.arch in SHIPPED_WEIGHTS:
            return str(SHIPPED_WEIGHTS[config.arch].path())
        return str(wts.resolve_torchvision_weights(config.arch))


class TimmBackend(TorchBackend):
    """Any ``timm`` classifier (optional extra: ``pip install 'mlsel[timm]'``)."""

    name = "timm"

    @staticmethod
    def _timm():  # noqa: ANN205
        try:
            import timm
        except ImportError as exc:
            raise ConfigError(
                "The timm backend needs the optional package timm, which is not installed. "
                "Install it with `pip install 'mlsel[timm]'` (or `pip install timm`), or use "
                "backend 'torchvision'."
            ) from exc
        return timm

    def check(self, config: Config, task: str) -> None:
        super().check(config, task)
        self._timm()

    def build(
        self,
        config: Config,
        num_classes: int,
        *,
        pretrained: str | None,
        weights: str | None = None,
    ) -> Network:
        from torch import nn

        from mlsel.kernel.errors import WeightsUnavailableError
        from mlsel.trainers.zoo import Network

        timm = self._timm()
        file = weights or (pretrained if pretrained not in (None, "imagenet") else None)
        kwargs = {"pretrained_cfg_overlay": {"file": str(file)}} if file else {}
        try:
            model = timm.create_model(
                config.arch, pretrained=pretrained is not None, num_classes=0, **kwargs
            )
        except (OSError, RuntimeError) as exc:
            raise WeightsUnavailableError(
                f"timm could not load weights for {config.arch!r}: {exc}. Pass a weights "
                "file with --weights FILE, or train with --no-pretrained."
            ) from exc
        data = timm.data.resolve_data_config({}, model=model)
        head = nn.Linear(model.num_features, num_classes)
        blocks = getattr(model, "blocks", None) or getattr(model, "stages", None)
        partial = list(blocks[-1:]) if blocks is not None else []
        return Network(
            model,
            head,
            partial,
            tuple(data["mean"]),
            tuple(data["std"]),
            pretrained_from=(str(file) if file else "timm:" + config.arch)
            if pretrained is not None
            else None,
        )
