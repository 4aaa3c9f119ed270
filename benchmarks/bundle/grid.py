"""The configurations every corpus task is trained with: 18, cheap enough for a CPU.

They span the offline-pretrained architectures (EfficientNet-Lite0, MobileNetV2) as
linear probes and in the three fine-tuning modes, and from-scratch ones (mlsel's small
CNN, ResNet-18, MobileNetV3-Small), learning rates over two decades, the three
augmentation presets and 1 to 10 epochs. Pretrained models see 64 px images,
from-scratch ones 32 px: sizes the candidate space proposes, small enough for a CPU
corpus. The shipped runs were trained with the first 16; the two linear probes came with
the embedding cache and are trained by the next build of the corpus.

Detection tasks (the real pasted-object tasks of ``benchmarks/detect_tasks.py``) get
their own grid: Faster R-CNN, RetinaNet and FCOS on the shipped MobileNetV2 and
EfficientNet-Lite0 backbones (frozen, partial and full fine-tuning, 320 or 448 px, two
learning rates and augmentations), and YOLO11n/s from scratch, each capped at 3 CPU-minutes.
"""

from __future__ import annotations

from mlsel.kernel.records import Config

__all__ = [
    "DETECT_GRID",
    "DETECT_RUN_SECONDS",
    "GRID",
    "PROBE_GRID",
    "TUNE_GRID",
    "grid_for",
]


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


def _detector(
    arch: str, finetune: str, lr: float, augment: str, epochs: int, size: int = 320
) -> Config:
    return Config(
        backend="torchvision",
        arch=arch,
        pretrained="imagenet",
        finetune=finetune,
        lr=lr,
        weight_decay=1e-4,
        augment=augment,
        epochs=epochs,
        image_size=size,
        batch_size=8,
        optimizer="adamw",
        schedule="cosine",
    )


def _yolo(arch: str, lr: float, augment: str, epochs: int, optimizer: str = "adamw") -> Config:
    return Config(
        backend="ultralytics",
        arch=arch,
        pretrained=None,
        finetune="full",
        lr=lr,
        weight_decay=5e-4,
        augment=augment,
        epochs=epochs,
        image_size=320,
        batch_size=16,
        optimizer=optimizer,
    )


#: 16 detection configs, each run capped at :data:`DETECT_RUN_SECONDS` of CPU time. The
#: epochs are what fits the cap on one core for a 120-image task at 320 px (Faster R-CNN
#: on MobileNetV2 takes about 17 s an epoch there); a run whose next epoch would pass
#: the cap stops with the best epoch so far (status ``timeout``).
DETECT_GRID: tuple[Config, ...] = (
    _detector("fasterrcnn_mobilenet_v2", "head", 1e-3, "light", 8),  # the default config
    _detector("fasterrcnn_mobilenet_v2", "head", 3e-3, "strong", 8),
    _detector("fasterrcnn_mobilenet_v2", "partial", 1e-3, "light", 7),
    _detector("fasterrcnn_mobilenet_v2", "full", 3e-4, "light", 5),
    _detector("fasterrcnn_mobilenet_v2", "head", 1e-3, "light", 5, size=448),
    _detector("fasterrcnn_efficientnet_lite0", "head", 1e-3, "light", 6),
    _detector("fasterrcnn_efficientnet_lite0", "partial", 1e-3, "none", 5),
    _detector("retinanet_mobilenet_v2", "head", 1e-3, "light", 10),
    _detector("retinanet_mobilenet_v2", "partial", 3e-3, "strong", 8),
    _detector("retinanet_efficientnet_lite0", "head", 1e-3, "light", 8),
    _detector("fcos_mobilenet_v2", "head", 1e-3, "light", 10),
    _detector("fcos_efficientnet_lite0", "head", 1e-3, "light", 8),
    _detector("fcos_efficientnet_lite0", "partial", 3e-3, "light", 8),
    _yolo("yolo11n", 1e-3, "strong", 15),
    _yolo("yolo11n", 1e-2, "light", 15, optimizer="sgd"),
    _yolo("yolo11s", 1e-3, "strong", 10),
)
#: The CPU seconds a detection corpus run may take (the issue's "about 3 CPU-minutes").
DETECT_RUN_SECONDS = 180.0


def grid_for(task: str) -> tuple[Config, ...]:
    """The grid a task of kind ``task`` (``classify`` or ``detect``) is trained with."""
    return DETECT_GRID if task == "detect" else GRID


# --- the second edition: a grid that matters on real colour images --------------------

#: The backbones whose ImageNet weights ship inside packages (mlsel.kernel.catalogue),
#: and the four of them that the concatenated probe joins.
SHIPPED = (
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "mobilenet_v2",
    "squeezenet1_1",
)
JOINED = SHIPPED[:4]
#: The backbones the fine-tuning configs train (the two cheapest on a CPU).
TUNED = ("efficientnet_lite0", "mobilenet_v2")


def _probe(arch: str, size: int, wd: float, augment: str = "none") -> Config:
    return Config(
        backend="torchvision",
        arch=arch,
        pretrained="imagenet",
        finetune="linear",
        lr=1e-3,
        weight_decay=wd,
        epochs=1,
        image_size=size,
        augment=augment,
    )


def _head(arch: str, size: int, lr: float, augment: str = "none") -> Config:
    return Config(
        backend="torchvision",
        arch=arch,
        pretrained="imagenet",
        finetune="head",
        lr=lr,
        epochs=30,
        image_size=size,
        batch_size=32,
        augment=augment,
        schedule="cosine",
    )


def _tuned(arch: str, finetune: str, size: int, lr: float, augment: str, epochs: int) -> Config:
    return Config(
        backend="torchvision",
        arch=arch,
        pretrained="imagenet",
        finetune=finetune,
        lr=lr,
        epochs=epochs,
        image_size=size,
        batch_size=16,
        augment=augment,
        schedule="cosine",
    )


def _small(arch: str, size: int, lr: float, augment: str, epochs: int) -> Config:
    return _scratch(arch, lr, augment, epochs).with_(image_size=size)


#: Cheap configs, run on every task of the second edition: linear probes of every shipped
#: backbone at 96, 160 and 224 px, with two or three strengths of regularisation and, for
#: the two cheapest backbones, augmented views (each view is embedded again: about 10
#: times a plain probe's cost); the concatenation of four; heads on cached embeddings;
#: the from-scratch nets at 32-64 px. Measured on a 9-class, 405-image Twemoji task on
#: a loaded 2-core machine: about 11 minutes for the whole grid.
PROBE_GRID: tuple[Config, ...] = (
    *(_probe(arch, size, 1e-2) for arch in SHIPPED for size in (96, 160, 224)),
    *(_probe(arch, 224, 1e-1, "light") for arch in TUNED),
    _probe("+".join(JOINED), 224, 1e-2),
    _probe("+".join(JOINED), 160, 1e-1),
    *(_probe(arch, 160, 1e-3) for arch in TUNED),
    *(
        _head(arch, size, 1e-3)
        for arch in ("efficientnet_lite0", "efficientnet_lite2")
        for size in (160, 224)
    ),
    _head("mobilenet_v2", 160, 1e-3),
    _head("mobilenet_v2", 224, 1e-3),
    _head("efficientnet_lite1", 224, 1e-3, "light"),
    _head("efficientnet_lite0", 224, 1e-2, "light"),
    _small("small_cnn", 32, 1e-3, "none", 10),
    _small("small_cnn", 64, 1e-3, "light", 10),
    _small("small_cnn", 32, 1e-2, "strong", 15),
    _small("resnet18", 32, 1e-3, "light", 8),
    _small("mobilenet_v3_small", 64, 1e-3, "light", 10),
)

#: Partial and full fine-tuning at 96-128 px, run on a stratified subset of tasks with
#: at most 30 training images a class (:func:`benchmarks.bundle.plan.tuned_subset`):
#: expensive on a CPU.
TUNE_GRID: tuple[Config, ...] = (
    *(_tuned(arch, "partial", 128, 1e-3, "light", 8) for arch in TUNED),
    *(_tuned(arch, "full", 128, 3e-4, "light", 8) for arch in TUNED),
    _tuned("efficientnet_lite0", "partial", 96, 3e-3, "strong", 8),
    _tuned("efficientnet_lite0", "full", 96, 1e-3, "strong", 6),
    _tuned("mobilenet_v2", "partial", 96, 1e-3, "none", 8),
    _tuned("mobilenet_v2", "full", 96, 1e-3, "none", 6),
)
