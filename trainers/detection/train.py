"""Train a torchvision detector on a YOLO dataset: :func:`fit_detector`.

The run, as the backend contract says (:mod:`mlsel.trainers.base`):

* both splits decoded once, at ``image_size`` (:mod:`~mlsel.trainers.detection.data`);
* anchors planned from the training boxes (:mod:`~mlsel.trainers.detection.anchors`);
* ``Config.optimizer`` (SGD with momentum, Adam, AdamW) at ``lr`` and ``weight_decay``,
  a linear warm-up over the first epoch's first steps (at most 50), then
  ``Config.schedule`` per epoch; gradients clipped to norm 10;
* augmentation: ``light`` flips half the images left to right (boxes too), ``strong``
  also jitters brightness and contrast by up to 20 %;
* after each epoch the val split is scored (COCO mAP50-95) and ``on_epoch`` called; a
  :class:`~mlsel.kernel.errors.StopRun` ends the run with its status, ``patience`` stops
  it early, and the best epoch's weights are kept;
* a non-finite loss raises :class:`~mlsel.kernel.errors.TrainingError`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import TrainingError
from mlsel.kernel.records import Config, EpochCallback, EpochRecord, RunResult

if TYPE_CHECKING:
    import torch

    from mlsel.kernel.dataset import Dataset
    from mlsel.trainers.detection.data import DetectionSplit
    from mlsel.trainers.detection.models import Detector

__all__ = ["GRAD_CLIP", "fit_detector", "prepare_detector"]

logger = logging.getLogger(__name__)

GRAD_CLIP = 10.0
_WARMUP_STEPS = 50
_JITTER = 0.2


@dataclass
class _Outcome:
    status: str = "completed"
    curve: list[EpochRecord] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, Any] | None = None
    train_seconds: float = 0.0


def prepare_detector(
    dataset: Dataset, config: Config, train: DetectionSplit, weights: str | None = None
) -> Detector:
    """Plan the anchors on ``train`` (or take those saved with a detector weights file)
    and build ``config.arch`` with its weights.

    Raises:
        WeightsUnavailableError: weights asked for and not found, or a file that does not
            fit the arch.
    """
    from mlsel.trainers.detection.anchors import plan_anchors
    from mlsel.trainers.detection.models import build_detector, level_strides, split_arch
    from mlsel.trainers.detection.weights import (
        detector_weights_file,
        load_detector_weights,
        saved_anchor_plan,
    )

    head, _ = split_arch(config.arch)
    strides = level_strides(config.arch)
    file = detector_weights_file(config, weights)
    plan = saved_anchor_plan(file) if file is not None else None
    if plan is None or plan.strides != strides:
        plan = plan_anchors(train.boxes_wh(), strides, anchor_free=head == "fcos")
    pretrained = config.pretrained is not None
    detector = build_detector(
        config.arch,
        dataset.num_classes,
        image_size=config.image_size,
        plan=plan,
        pretrained=pretrained and file is None,
        frozen_bn=pretrained,
    )
    if file is not None:
        detector.notes.update(load_detector_weights(detector.model, file, config.arch))
        detector.weights = f"{file} (detector)"
    elif pretrained:
        detector.notes["detector_weights"] = (
            "none found for this arch: ImageNet backbone, FPN and heads trained from random init"
        )
    return detector


def _targets(
    split: DetectionSplit, idx: list[int], flips: list[bool], device: torch.device
) -> list[dict[str, torch.Tensor]]:
    import torch

    from mlsel.trainers.detection.data import flip_boxes

    out = []
    for i, flip in zip(idx, flips, strict=True):
        boxes = flip_boxes(split.boxes[i], split.size) if flip else split.boxes[i]
        out.append(
            {
                "boxes": torch.from_numpy(boxes).to(device),
                "labels": torch.from_numpy(split.labels[i] + 1).to(device),  # 0: background
            }
        )
    return out


def _images(
    split: DetectionSplit,
    idx: list[int],
    flips: list[bool],
    augment: str,
    generator: torch.Generator,
    device: torch.device,
) -> list[torch.Tensor]:
    import torch

    x = split.images[idx].to(device).float().div_(255.0)
    if any(flips):
        mask = torch.tensor(flips, device=device)
        x[mask] = x[mask].flip(-1)
    if augment == "strong":
        n = len(idx)
        gain = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * _JITTER
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        contrast = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * _JITTER
        x = ((x - mean) * contrast.to(device) + mean) * gain.to(device)
        x = x.clamp_(0.0, 1.0)
    return list(x)


def _train_epoch(
    detector: Detector,
    split: DetectionSplit,
    config: Config,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
    epoch: int,
) -> float:
    """One pass over the training images; returns the mean summed loss."""
    import torch

    model = detector.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    order = torch.randperm(len(split), generator=generator).tolist()
    steps = math.ceil(len(order) / config.batch_size)
    warmup = min(_WARMUP_STEPS, steps) if epoch == 1 else 0
    targets_lr = [group["lr"] for group in optimizer.param_groups]
    total, seen = 0.0, 0
    for step, lo in enumerate(range(0, len(order), config.batch_size)):
        idx = order[lo : lo + config.batch_size]
        flips = (
            (torch.rand(len(idx), generator=generator) < 0.5).tolist()
            if config.augment != "none"
            else [False] * len(idx)
        )
        for group, target in zip(optimizer.param_groups, targets_lr, strict=True):
            group["lr"] = target * min(1.0, (step + 1) / warmup) if warmup else target
        images = _images(split, idx, flips, config.augment, generator, device)
        losses = model(images, _targets(split, idx, flips, device))
        loss = sum(losses.values())
        if not isinstance(loss, torch.Tensor) or not torch.isfinite(loss):
            value = float(loss.detach()) if isinstance(loss, torch.Tensor) else loss
            parts = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in losses.items())
            raise TrainingError(
                f"The training loss of {config.arch} became {value} at epoch {epoch} "
                f"({parts}; lr={config.lr}). Lower the learning rate or use another optimizer."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        optimizer.step()
        total += float(loss.item()) * len(idx)
        seen += len(idx)
    for group, target in zip(optimizer.param_groups, targets_lr, strict=True):
        group["lr"] = target
    return total / max(seen, 1)


def _loop(
    detector: Detector,
    train: DetectionSplit,
    val: DetectionSplit,
    config: Config,
    classes: tuple[str, ...],
    device: torch.device,
    on_epoch: EpochCallback | None,
) -> _Outcome:
    import torch

    from mlsel.trainers.detection.evaluate import detection_metrics, predict_images
    from mlsel.trainers.detection.models import set_trainable
    from mlsel.trainers.loop import EpochEnd, make_optimizer, make_scheduler

    torch.manual_seed(config.seed)
    detector.model.to(device)
    optimizer = make_optimizer(set_trainable(detector, config.finetune), config)
    scheduler = make_scheduler(optimizer, config)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    out = _Outcome()
    end = EpochEnd(config.patience, on_epoch)
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        loss = _train_epoch(detector, train, config, optimizer, generator, device, epoch)
        out.train_seconds += time.perf_counter() - start
        if scheduler is not None:
            scheduler.step()
        predictions = predict_images(detector.model, val.images, device, max(config.batch_size, 8))
        metrics = detection_metrics(val, predictions, classes)
        score = metrics.get("map")  # absent when val holds no box
        record = EpochRecord(
            epoch=epoch,
            train_loss=loss,
            score=score,
            seconds=time.perf_counter() - start,
        )
        out.curve.append(record)
        if end.keep_if_best(score, detector.model):
            out.metrics = metrics
        if end.stop(record):
            break
    out.status, out.best_state = end.status, end.best_state
    return out


def fit_detector(
    dataset: Dataset,
    config: Config,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    *,
    weights: str | None = None,
    artifact_dir: str | None = None,
) -> RunResult:
    """Train ``config`` (a torchvision detector) on ``dataset`` and return its result.

    The score is COCO mAP50-95 on val at the best epoch (``None`` when val holds no
    box); ``metrics`` hold ``map``, ``map50``, ``map75``, ``ap/<class>`` and ``n_val`` (see
    :func:`~mlsel.trainers.detection.evaluate.detection_metrics`), the number of training
    boxes and the anchors' multiple. ``hardware`` records the weights, the anchor plan's
    source and the device; ``artifact_dir`` receives the model (see
    :mod:`~mlsel.trainers.detection.saved`).

    Raises:
        DatasetError: an empty split or an unreadable image.
        WeightsUnavailableError: pretrained weights that cannot be found.
        TrainingError: a non-finite loss.
    """
    from mlsel.trainers.detection.data import load_split
    from mlsel.trainers.detection.saved import save_detector
    from mlsel.trainers.devices import (
        HostMemorySampler,
        describe_hardware,
        gpu_peak_mb,
        library_versions,
        reset_gpu_peak,
    )

    started = time.perf_counter()
    with HostMemorySampler() as memory:
        reset_gpu_peak(device)
        train = load_split(dataset, "train", config.image_size)
        val = load_split(dataset, "val", config.image_size)
        decoded = time.perf_counter() - started
        detector = prepare_detector(dataset, config, train, weights)
        outcome = _loop(detector, train, val, config, dataset.classes, device, on_epoch)
    if outcome.best_state is None:  # no epoch ended: the loop raises before that
        raise TrainingError(f"{config.arch} ended before its first epoch was scored.")
    plan = detector.plan
    metrics = dict(outcome.metrics)
    metrics.update(
        epochs_run=float(len(outcome.curve)),
        batch_size_used=float(config.batch_size),
        n_train=float(len(train)),
        n_train_boxes=float(sum(len(b) for b in train.boxes)),
        anchor_multiple=plan.multiple,
    )
    notes = {
        **detector.notes,
        "weights": detector.weights or "none",
        "anchors": plan.source,
        "anchor_sizes": "; ".join(
            f"stride {s}: {', '.join(f'{v:g}' for v in level)}"
            for s, level in zip(plan.strides, plan.sizes, strict=True)
        ),
        "aspect_ratios": ", ".join(f"{r:g}" for r in plan.aspect_ratios),
        "decode_seconds": f"{decoded:.3f}",
    }
    if train.dropped:
        notes["boxes_dropped"] = f"{train.dropped} training boxes under 1 px at the training size"
    if artifact_dir is not None:
        save_detector(
            Path(artifact_dir),
            detector,
            outcome.best_state,
            config=config,
            classes=dataset.classes,
            metrics=metrics,
            curve=outcome.curve,
        )
    return RunResult(
        status=outcome.status,
        score=metrics.get("map"),
        metrics=metrics,
        curve=tuple(outcome.curve),
        wall_seconds=time.perf_counter() - started,
        seconds_per_epoch=outcome.train_seconds / max(len(outcome.curve), 1),
        peak_gpu_mb=gpu_peak_mb(device),
        peak_host_mb=memory.peak_mb,
        hardware={**describe_hardware(device), **notes},
        versions=library_versions(),
        artifact_dir=artifact_dir,
    )
