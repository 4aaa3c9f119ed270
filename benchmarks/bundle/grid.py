"""The configurations every corpus task is trained with: 18, cheap enough for a CPU.

They span the offline-pretrained architectures (EfficientNet-Lite0, MobileNetV2) as
linear probes and in the three fine-tuning modes, and from-scratch ones (mlsel's small
CNN, ResNet-18, MobileNetV3-Small), learning rates over two decades, the three
augmentation presets and 1 to 10 epochs. Pretrained models see 64 px images,
from-scratch ones 32 px: sizes the candidate space proposes, small enough for a CPU
corpus. The shipped runs were trained with the first 16; the two linear probes came with
the embedding cache and are trained by the next build of the corpus.

Detection tasks get their own grid, YOLO11 from scratch (no detection weights ship
offline): two sizes, two learning rates, 30 or 60 epochs at 96 px.
"""

from __future__ import annotations

from mlsel.kernel.records import Config

__all__ = ["DETECT_GRID", "GRID", "grid_for"]


def _pretrained(arch: str, finetune: str, lr: float, augment: str, epochs: int) -> Config:
    return Config(
        backend="torchvision",
        arch=arch,
        pretrained="imagenet",
        finetune=finetune,
        lr=lr,
        augment=augment,
        epochs=epochs,
        image_size=64,
        batch_size=16,
    )


def _scratch(arch: str, lr: float, augment: str, epochs: int) -> Config:
    return Config(
        backend="torchvision",
        arch=arch,
        pretrained=None,
        finetune="full",
        lr=lr,
        augment=augment,
        epochs=epochs,
        image_size=32,
        batch_size=16,
        schedule="cosine",
    )


GRID: tuple[Config, ...] = (
    _pretrained("efficientnet_lite0", "head", 1e-3, "none", 5),
    _pretrained("efficientnet_lite0", "head", 1e-2, "light", 5),
    _pretrained("efficientnet_lite0", "partial", 1e-3, "light", 3),
    _pretrained("efficientnet_lite0", "full", 1e-4, "light", 3),
    _pretrained("mobilenet_v2", "head", 1e-3, "none", 5),
    _pretrained("mobilenet_v2", "head", 1e-2, "light", 5),
    _pretrained("mobilenet_v2", "partial", 1e-3, "none", 3),
    _pretrained("mobilenet_v2", "full", 1e-4, "strong", 3),
    _scratch("small_cnn", 1e-3, "none", 5),
    _scratch("small_cnn", 1e-3, "light", 10),
    _scratch("small_cnn", 1e-2, "strong", 10),
    _scratch("small_cnn", 3e-4, "none", 3),
    _scratch("resnet18", 1e-3, "none", 5),
    _scratch("resnet18", 1e-2, "light", 5),
    _scratch("mobilenet_v3_small", 1e-3, "none", 5),
    _scratch("mobilenet_v3_small", 1e-2, "light", 10),
    _pretrained("efficientnet_lite0", "linear", 1e-3, "none", 1).with_(weight_decay=1e-2),
    _pretrained("mobilenet_v2", "linear", 1e-3, "none", 1).with_(weight_decay=1e-2),
)


def _yolo(arch: str, lr: float, augment: str, epochs: int) -> Config:
    return Config(
        backend="ultralytics",
        arch=arch,
        pretrained=None,
        finetune="full",
        lr=lr,
        augment=augment,
        epochs=epochs,
        image_size=96,
        batch_size=16,
    )


DETECT_GRID: tuple[Config, ...] = (
    _yolo("yolo11n", 1e-3, "light", 30),
    _yolo("yolo11n", 1e-2, "light", 30),
    _yolo("yolo11n", 1e-3, "strong", 60),
    _yolo("yolo11s", 1e-3, "light", 30),
)


def grid_for(task: str) -> tuple[Config, ...]:
    """The grid a task of kind ``task`` (``classify`` or ``detect``) is trained with."""
    return DETECT_GRID if task == "detect" else GRID
