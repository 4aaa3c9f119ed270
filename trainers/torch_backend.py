"""PyTorch backends: torchvision's zoo and (optional) timm classifiers, and torchvision's
detectors. The classifiers build a :class:`~mlsel.trainers.zoo.Network` and share
:func:`run_loop`; this module adds devices, memory measurement, the CUDA out-of-memory
retry, metrics and the saved model. An arch whose catalogue task is ``detect`` (Faster
R-CNN, RetinaNet, FCOS on a shipped backbone) trains in :mod:`mlsel.trainers.detection`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.catalogue import FROZEN_MODES, architecture, architectures
from mlsel.kernel.errors import ConfigError, StopRun, TrainingError
from mlsel.kernel.records import Config, EpochCallback, EpochRecord, RunResult
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
    import torch

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
                "For detection use backend 'torchvision' with a detector arch "
                f"({', '.join(architectures(backend='torchvision', task='detect'))}) or "
                "backend 'ultralytics' with arch yolo11n or yolo11s."
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
        from mlsel.trainers.cache import TensorCache
        from mlsel.trainers.metrics import classification_metrics

        self.check(config, dataset.task)
        dev = resolve_device(device)
        cache = cache if cache is not None else TensorCache()
        started = time.perf_counter()
        with HostMemorySampler() as memory:
            reset_gpu_peak(dev)
            if config.finetune in FROZEN_MODES:
                fitted = self._fit_frozen(dataset, config, dev, on_epoch, cache, weights)
            else:
                fitted = self._fit_loop(dataset, config, dev, on_epoch, cache, weights)
        metrics, confusion = classification_metrics(fitted.val_y, fitted.val_scores)
        metrics["batch_size_used"] = float(fitted.batch)
        metrics["epochs_run"] = float(len(fitted.curve))
        hardware = {
            **describe_hardware(dev),
            **fitted.notes,
            "weights": fitted.weights,
        }
        if artifact_dir is not None:
            self._save(Path(artifact_dir), fitted, dataset, config, metrics, confusion)
        wall = time.perf_counter() - started
        return RunResult(
            status=fitted.status,
            score=metrics["f1_macro"],
            metrics=metrics,
            confusion=tuple(tuple(int(v) for v in row) for row in confusion),
            curve=tuple(fitted.curve),
            wall_seconds=wall,
            seconds_per_epoch=fitted.train_seconds / max(len(fitted.curve), 1),
            peak_gpu_mb=gpu_peak_mb(dev),
            peak_host_mb=memory.peak_mb,
            hardware=hardware,
            versions=library_versions(),
            artifact_dir=artifact_dir,
        )

    def _fit_loop(
        self,
        dataset: Dataset,
        config: Config,
        dev: torch.device,
        on_epoch: EpochCallback | None,
        cache: TensorCache,
        weights: str | None,
    ) -> _Fitted:
        """Train the backbone too (``partial``, ``full``), retrying a CUDA OOM once at
        half the batch."""
        import torch

        from mlsel.trainers.loop import run_loop

        batch, notes = config.batch_size, dict[str, str]()
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
                notes["oom_retry"] = f"CUDA out of memory at batch {batch}; retried at {batch // 2}"
                logger.warning(notes["oom_retry"])
                batch //= 2
        if outcome.val_scores is None:  # no epoch ended: the loop raises before that
            raise TrainingError(f"{config.arch} ended before its first epoch was scored.")
        return _Fitted(
            status=outcome.status,
            curve=outcome.curve,
            val_y=val[1].numpy(),
            val_scores=outcome.val_scores,
            train_seconds=outcome.train_seconds,
            batch=batch,
            notes=notes,
            weights=net.pretrained_from or "none",
            model={
                "state_dict": outcome.best_state,
                "mean": list(net.mean),
                "std": list(net.std),
            },
        )

    def fit_final(
        self,
        dataset: Dataset,
        config: Config,
        folder: Path,
        *,
        metrics: dict[str, float],
        confusion: Any,
        cache: TensorCache | None = None,
    ) -> float:
        """Refit a kept linear probe on train + val and save it to ``folder``, as a run
        would be saved: the model a search hands over once selection is done.

        The probe was chosen on val; fitting it again with the val images too gives it a
        third more data, and costs one fit on embeddings that are cached already. The
        saved metrics and confusion are the selection run's (given), the only held-out
        figures there are; the curve is left out. Returns the seconds it took.

        Raises:
            ConfigError: ``config`` is not a linear probe.
        """
        import numpy as np

        from mlsel.trainers.cache import TensorCache

        if config.finetune != "linear":
            raise ConfigError(
                f"Only a linear probe is refitted on train + val; {config.arch} has finetune "
                f"{config.finetune!r}. Use the run's own model."
            )
        started = time.perf_counter()
        cache = cache if cache is not None else TensorCache()
        fitted = self._fit_frozen(
            dataset, config, resolve_device("cpu"), None, cache, None, with_val=True
        )
        fitted.curve = []
        saved_confusion = None if confusion is None else np.asarray(confusion)
        self._save(Path(folder), fitted, dataset, config, metrics, saved_confusion)
        return time.perf_counter() - started

    def _fit_frozen(
        self,
        dataset: Dataset,
        config: Config,
        dev: torch.device,
        on_epoch: EpochCallback | None,
        cache: TensorCache,
        weights: str | None,
        *,
        with_val: bool = False,
    ) -> _Fitted:
        """A linear probe or a head on the backbone's cached embeddings (a probe on train
        and val together when ``with_val``)."""
        from mlsel.trainers.frozen import (
            EMBEDDING_TRANSFORM,
            embed_dataset,
            fit_head,
            fit_linear,
            with_val_in_train,
        )

        passes = cache.embeddings.passes_
        data = embed_dataset(dataset, config, cache.embeddings, dev, weights=weights)
        embedded = cache.embeddings.passes_ - passes
        if with_val:
            data = with_val_in_train(data)
        if config.finetune == "linear":
            outcome = fit_linear(data, config, dataset.num_classes)
            try:
                if on_epoch is not None:
                    on_epoch(outcome.curve[0])
            except StopRun as stop:  # a one-step fit is done already: keep it, say so
                outcome.status = stop.status
        else:
            outcome = fit_head(data, config, dataset.num_classes, dev, on_epoch)
        return _Fitted(
            status=outcome.status,
            curve=outcome.curve,
            val_y=data.val_y.numpy(),
            val_scores=outcome.val_scores,
            train_seconds=outcome.train_seconds,
            batch=config.batch_size,
            notes={
                "embedded_images": str(embedded),
                "embedding_seconds": f"{data.seconds:.3f}",
                "embedding_views": str(data.train.shape[0]),
            },
            weights=", ".join(p.weights_path or "none" for p in data.backbones),
            model={
                "head_state": outcome.head_state,
                "frozen_backbones": [p.to_dict() for p in data.backbones],
                "embedding_transform": EMBEDDING_TRANSFORM,
                "embedding_dim": int(data.train.shape[-1]),
                "dropout": 0.0 if config.finetune == "linear" else 0.2,
                # each backbone normalises inside the model
                "mean": [0.0, 0.0, 0.0],
                "std": [1.0, 1.0, 1.0],
            },
        )

    def _save(
        self,
        folder: Path,
        fitted: _Fitted,
        dataset: Dataset,
        config: Config,
        metrics: dict,
        confusion: Any,
    ) -> None:
        import torch

        from mlsel.trainers.artifacts import write_atomically, write_run_files

        folder.mkdir(parents=True, exist_ok=True)
        model = dict(fitted.model)
        mean, std = model.pop("mean"), model.pop("std")
        saved = {
            "format": MODEL_FORMAT,
            "backend": self.name,
            "arch": config.arch,
            "num_classes": dataset.num_classes,
            "image_size": config.image_size,
            **model,
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
                "mean": mean,
                "std": std,
            },
            metrics=metrics,
            confusion=confusion,
            curve=fitted.curve,
        )


@dataclass
class _Fitted:
    """What either way of fitting hands to :meth:`TorchBackend.fit`: the curve, the best
    val scores, and what ``model.pt`` keeps (``state_dict``, or a frozen model's head
    and backbones)."""

    status: str
    curve: list[EpochRecord]
    val_y: Any
    val_scores: Any
    train_seconds: float
    batch: int
    notes: dict[str, str]
    weights: str
    model: dict[str, Any]


def _is_detector(arch: str) -> bool:
    entry = architecture(arch)
    return entry is not None and entry.backend == "torchvision" and entry.task == "detect"


class TorchvisionBackend(TorchBackend):
    """torchvision classifiers, mlsel's ``small_cnn``, the offline ImageNet models, and
    the detectors on the shipped backbones (:mod:`mlsel.trainers.detection`)."""

    name = "torchvision"

    def check(self, config: Config, task: str) -> None:
        from mlsel.kernel.catalogue import parts
        from mlsel.trainers.zoo import _check_arch

        if task == "detect" or _is_detector(config.arch):
            from mlsel.trainers.detection.models import check_detector

            check_detector(config, task)
            return
        super().check(config, task)
        names = parts(config.arch)
        if len(names) > 1 and config.finetune not in FROZEN_MODES:
            raise ConfigError(
                f"{config.arch} joins the embeddings of {len(names)} frozen backbones; it "
                f"trains with finetune 'linear' or 'head', not {config.finetune!r}."
            )
        for name in names:
            _check_arch(name, config.image_size, config.pretrained is not None)
        if config.finetune == "linear":
            from mlsel.trainers.frozen import ensemble_strengths

            ensemble_strengths(config)  # raises on a malformed ensemble

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
        """A classifier as :class:`TorchBackend` trains it; a detector (or a detection
        dataset, refused by :meth:`check` unless the arch is a detector) in
        :mod:`mlsel.trainers.detection`."""
        if not _is_detector(config.arch) and dataset.task != "detect":
            options: dict[str, Any] = {"cache": cache, "weights": weights}
            return super().fit(
                dataset, config, device, on_epoch, artifact_dir=artifact_dir, **options
            )
        from mlsel.trainers.detection.train import fit_detector

        self.check(config, dataset.task)
        device_ = resolve_device(device)
        return fit_detector(
            dataset, config, device_, on_epoch, weights=weights, artifact_dir=artifact_dir
        )

    def resolve_weights(self, config: Config, weights: str | None = None) -> str | None:
        from mlsel.kernel.catalogue import SHIPPED_WEIGHTS, parts
        from mlsel.trainers import weights as wts
        from mlsel.trainers.zoo import _check_arch

        if _is_detector(config.arch):
            from mlsel.trainers.detection.weights import resolve_detector_weights

            return resolve_detector_weights(config, weights)
        names = parts(config.arch)
        if len(names) > 1:
            # One file cannot hold the weights of several backbones; say so before a run
            # is logged (embed_dataset checks again for direct callers).
            if weights or config.pretrained != "imagenet":
                given = "--weights FILE" if weights else f"pretrained={config.pretrained!r}"
                raise ConfigError(
                    f"{given} loads one backbone; {config.arch} concatenates {len(names)}. "
                    "Train one backbone, or use pretrained='imagenet' without --weights for "
                    "the shipped weights."
                )
            found = [self.resolve_weights(config.with_(arch=n), weights) for n in names]
            return ", ".join(str(f) for f in found)
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
