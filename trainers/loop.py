"""The training loop shared by the PyTorch backends (torchvision, timm).

Inputs are uint8 image tensors from :class:`~mlsel.trainers.cache.TensorCache`; batches
are converted, augmented and normalised on the training device. This loop trains the
backbone too (finetune ``partial`` or ``full``); a frozen backbone trains on cached
embeddings instead (:mod:`mlsel.trainers.frozen`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import StopRun, TrainingError
from mlsel.kernel.records import Config, EpochCallback, EpochRecord
from mlsel.trainers.augment import augment_batch, normalise
from mlsel.trainers.metrics import classification_metrics

if TYPE_CHECKING:
    import numpy as np
    import torch

    from mlsel.trainers.zoo import Network

__all__ = [
    "EpochEnd",
    "LoopOutcome",
    "duplicate_to_minimum",
    "make_optimizer",
    "make_scheduler",
    "run_loop",
]

logger = logging.getLogger(__name__)


@dataclass
class EpochEnd:
    """What every training loop does after an epoch's validation: keep the weights of the
    best epoch so far, call ``on_epoch`` (whose :class:`StopRun` ends the run with its
    status), and stop early after ``patience`` epochs without a better score."""

    patience: int = 0
    on_epoch: EpochCallback | None = None
    best: float = -math.inf
    stale: int = 0
    best_state: dict | None = None
    status: str = "completed"

    def keep_if_best(self, score: float | None, model: Any) -> bool:
        """Keep ``model``'s weights when ``score`` beats every earlier epoch's (the first
        epoch is always kept; ``None``, no score, never beats one); return whether it did."""
        if self.best_state is not None and (score is None or score <= self.best):
            self.stale += 1
            return False
        self.best, self.stale = (score if score is not None else -math.inf), 0
        self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return True

    def stop(self, record: EpochRecord) -> bool:
        """Whether the run ends after ``record``'s epoch."""
        try:
            if self.on_epoch is not None:
                self.on_epoch(record)
        except StopRun as stop:
            self.status = stop.status
            logger.info("run stopped at epoch %d: %s", record.epoch, stop.status)
            return True
        if self.patience and self.stale >= self.patience:
            logger.info(
                "early stop at epoch %d: no better score for %d epochs", record.epoch, self.stale
            )
            return True
        return False


@dataclass
class LoopOutcome:
    """What the loop hands back: status, curve, and the best model's validation scores."""

    status: str
    curve: list[EpochRecord] = field(default_factory=list)
    val_scores: np.ndarray | None = None
    best_state: dict | None = None
    train_seconds: float = 0.0


def duplicate_to_minimum(labels: torch.Tensor, minimum: int) -> torch.Tensor:
    """Training indices where each class is repeated up to ``minimum`` samples (the
    few-shot study duplicated every class up to 50)."""
    import torch

    index = torch.arange(len(labels))
    if minimum <= 0:
        return index
    parts = []
    for cls in labels.unique(sorted=True).tolist():
        members = index[labels == cls]
        reps = max(1, math.ceil(minimum / len(members)))
        parts.append(members.repeat(reps)[: max(minimum, len(members))])
    return torch.cat(parts)


class _Batches:
    """Turns uint8 batches into normalised float batches on the device."""

    def __init__(self, net: Network, device: torch.device) -> None:
        self.net, self.device = net, device
        self.channels_last = device.type == "cuda"

    def prepare(
        self, images: torch.Tensor, augment: str | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        import torch

        x = images.to(self.device, non_blocking=True).float().div_(255.0)
        if augment:
            x = augment_batch(x, augment, generator)
        x = normalise(x, self.net.mean, self.net.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def _set_trainable(net: Network, finetune: str) -> list:
    net.backbone.requires_grad_(finetune == "full")
    if finetune == "partial":
        for module in net.partial:
            module.requires_grad_(True)
    net.head.requires_grad_(True)
    params = [p for m in (net.backbone, net.head) for p in m.parameters() if p.requires_grad]
    return params


def make_optimizer(params: list, config: Config) -> torch.optim.Optimizer:
    import torch

    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay, nesterov=True
        )
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, config: Config) -> Any:
    import torch

    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, config.epochs // 3), gamma=0.1)
    return None


@dataclass
class _Session:
    """What one run of the loop trains with, set up once (see :func:`_start`)."""

    net: Network
    model: torch.nn.Module
    config: Config
    device: torch.device
    batches: _Batches
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    loss_fn: torch.nn.Module
    generator: torch.Generator
    batch: int
    eval_size: int
    amp: bool
    augment: str | None
    order: torch.Tensor  # training indices, each class repeated up to min_per_class
    train_x: torch.Tensor
    train_y: torch.Tensor


def _start(
    net: Network,
    train: tuple[torch.Tensor, torch.Tensor],
    val_x: torch.Tensor,
    config: Config,
    device: torch.device,
    batch_size: int | None,
) -> _Session:
    import torch

    torch.manual_seed(config.seed)
    amp = device.type == "cuda"
    model = net.model().to(device)
    if amp:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(_set_trainable(net, config.finetune), config)
    batches = _Batches(net, device)
    batch = batch_size or config.batch_size
    eval_size = max(batch, 64)
    train_x, train_y = train
    return _Session(
        net=net,
        model=model,
        config=config,
        device=device,
        batches=batches,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, config),
        scaler=torch.amp.GradScaler("cuda", enabled=amp),
        loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        generator=torch.Generator(device="cpu").manual_seed(config.seed),
        batch=batch,
        eval_size=eval_size,
        amp=amp,
        augment=None if config.augment == "none" else config.augment,
        order=duplicate_to_minimum(train_y, config.min_per_class),
        train_x=train_x,
        train_y=train_y,
    )


def _train_epoch(run: _Session, epoch: int) -> float:
    """One pass over the training data; returns the mean training loss."""
    import torch

    net, device = run.net, run.device
    net.head.train()
    net.backbone.train()
    perm = run.order[torch.randperm(len(run.order), generator=run.generator)]
    total, seen = 0.0, 0
    for lo in range(0, len(perm), run.batch):
        idx = perm[lo : lo + run.batch]
        if len(idx) == 1 and len(perm) > 1:  # BatchNorm cannot train on one sample
            continue
        y = run.train_y[idx].to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=run.amp):
            x = run.batches.prepare(run.train_x[idx], run.augment, run.generator)
            logits = run.model(x)
            loss = run.loss_fn(logits.float(), y)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"The training loss became {loss.item()} at epoch {epoch} (lr={run.config.lr}). "
                "Lower the learning rate or use another optimizer."
            )
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        total += loss.item() * len(idx)
        seen += len(idx)
    if run.scheduler is not None:
        run.scheduler.step()
    return total / max(seen, 1)


def run_loop(
    net: Network,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    config: Config,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    *,
    batch_size: int | None = None,
) -> LoopOutcome:
    """Train ``net`` per ``config``; return the best epoch's validation scores and state.

    Raises:
        TrainingError: the training loss became NaN or infinite.
        torch.cuda.OutOfMemoryError: propagated so the caller can retry a smaller batch.
    """
    val_x, val_y = val
    run = _start(net, train, val_x, config, device, batch_size)
    val_y_dev = val_y.to(device)
    out = LoopOutcome(status="completed")
    end = EpochEnd(config.patience, on_epoch)
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        train_loss = _train_epoch(run, epoch)
        out.train_seconds += time.perf_counter() - start
        scores, val_loss = _evaluate(run, val_x, val_y_dev)
        metrics, _ = classification_metrics(val_y.numpy(), scores)
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            score=metrics["f1_macro"],
            seconds=time.perf_counter() - start,
        )
        out.curve.append(record)
        if end.keep_if_best(metrics["f1_macro"], run.model):
            out.val_scores = scores
        if end.stop(record):
            break
    out.status, out.best_state = end.status, end.best_state
    return out


def _evaluate(run: _Session, val_x: torch.Tensor, val_y: torch.Tensor) -> tuple[np.ndarray, float]:
    """Validation logits and loss (the training loss, label smoothing included)."""
    import torch

    run.model.eval()
    parts = []
    with torch.no_grad(), torch.autocast(run.device.type, enabled=run.amp):
        for lo in range(0, len(val_x), run.eval_size):
            batch = run.batches.prepare(val_x[lo : lo + run.eval_size], None, None)
            parts.append(run.model(batch).float())
    logits = torch.cat(parts)
    loss = run.loss_fn(logits, val_y).item()
    return logits.cpu().numpy(), float(loss)
