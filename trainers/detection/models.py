"""The detectors: torchvision's Faster R-CNN, RetinaNet and FCOS over an FPN on a shipped
ImageNet backbone.

An arch name is ``<head>_<backbone>`` (``fcos_efficientnet_lite0``): the head is one of
:data:`HEADS`, the backbone one of :data:`~mlsel.trainers.detection.features.BACKBONES`,
and the catalogue lists it (:data:`DETECTOR_ARCHS`).
Every detector is built through torchvision's public API, with:

* a ``BackboneWithFPN`` over C3-C5 (:mod:`~mlsel.trainers.detection.features`) with
  :data:`FPN_CHANNELS` channels: Faster R-CNN adds a max-pooled P6 (levels at strides 8
  to 64), RetinaNet and FCOS add P6 and P7 (strides 8 to 128);
* lighter heads than torchvision's defaults, for CPU budgets: 64 channels, and
  :data:`HEAD_CONVS` convs per RetinaNet/FCOS tower; Faster R-CNN's box head has two
  512-wide layers;
* anchors from the training boxes (:mod:`~mlsel.trainers.detection.anchors`);
* the transform resizing every image to ``image_size x image_size`` (``fixed_size``,
  ``min_size = max_size = image_size``), so the model takes an image of any size and
  returns boxes in that image's pixels;
* label 0 kept for the background: dataset class ``i`` is label ``i + 1``.

What trains per ``Config.finetune``: ``linear`` and ``head`` freeze the backbone (FPN
and heads train), ``partial`` trains its stride-32 stage too, ``full`` all of it (the
BatchNorm statistics of a pretrained backbone stay frozen in every mode).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlsel.kernel.catalogue import DETECTION_HEADS, architecture, architectures
from mlsel.kernel.errors import ConfigError, invalid_parameter
from mlsel.trainers.detection.anchors import AnchorPlan
from mlsel.trainers.detection.features import BACKBONES, build_body

if TYPE_CHECKING:
    from torch import nn

    from mlsel.kernel.records import Config

__all__ = [
    "DETECTOR_ARCHS",
    "FPN_CHANNELS",
    "HEAD_CONVS",
    "HEADS",
    "MIN_IMAGE_SIZE",
    "Detector",
    "build_detector",
    "check_detector",
    "level_strides",
    "set_trainable",
    "split_arch",
]

logger = logging.getLogger(__name__)

HEADS: tuple[str, ...] = DETECTION_HEADS
#: The catalogued detector archs (:data:`mlsel.kernel.catalogue.ARCHITECTURES`).
DETECTOR_ARCHS: tuple[str, ...] = architectures(backend="torchvision", task="detect")
#: FPN and head width: a quarter of torchvision's 256, for CPU budgets.
FPN_CHANNELS = 64
#: Convs in each tower (class, box) of the RetinaNet and FCOS heads: torchvision has 4.
HEAD_CONVS = 2
#: The smallest training side: the coarsest level (stride 128) keeps one cell.
MIN_IMAGE_SIZE = 64
_DETECTIONS = 100  # per image: what COCO mAP scores
_SCORE_THRESH = 0.05


@dataclass
class Detector:
    """A built detector and the parts that fine-tuning treats apart.

    Attributes:
        model: the torchvision detector (``model(images)`` in eval mode -> boxes).
        body: its backbone stages (inside ``model``).
        partial: the body's children trained by ``finetune="partial"``.
        arch, image_size, num_classes, plan: how it was built (``num_classes`` without
            the background).
        weights: where its pretrained weights came from, ``None`` for random init.
    """

    model: nn.Module
    body: nn.Module
    partial: list[nn.Module]
    arch: str
    image_size: int
    num_classes: int
    plan: AnchorPlan
    weights: str | None = None
    notes: dict[str, str] = field(default_factory=dict)


def split_arch(arch: str) -> tuple[str, str]:
    """``"fcos_efficientnet_lite0"`` -> ``("fcos", "efficientnet_lite0")``.

    Raises:
        ConfigError: not ``<head>_<backbone>`` of known parts.
    """
    head, _, backbone = arch.partition("_")
    entry = architecture(arch)
    known = entry is not None and entry.backend == "torchvision" and entry.task == "detect"
    if not known or head not in HEADS or backbone not in BACKBONES:
        raise ConfigError(
            f"The torchvision detector {arch!r} is not known. Use one of "
            f"{', '.join(DETECTOR_ARCHS)} (head {'/'.join(HEADS)} on a shipped backbone)."
        )
    return head, backbone


def check_detector(config: Config, task: str) -> None:
    """Raise when ``config`` cannot train a detector for ``task``.

    Raises:
        ConfigError: another task, a classifier arch, an unknown detector or too small
            an image size.
        TrainingError: the COCO evaluator (pycocotools) is not installed.
    """
    from mlsel.trainers.detection.coco import require_evaluator

    if task != "detect":
        raise ConfigError(
            f"{config.arch} is a detector; the dataset's task is {task!r}. Train a "
            "classifier on it, or a detector on a YOLO dataset."
        )
    entry = architecture(config.arch)
    if entry is not None and entry.task != "detect":
        raise ConfigError(
            f"{config.arch} is a classifier; the dataset's task is 'detect'. Use a "
            f"torchvision detector ({', '.join(DETECTOR_ARCHS)}) or backend 'ultralytics' "
            "(yolo11n, yolo11s)."
        )
    split_arch(config.arch)
    require_evaluator()
    if config.image_size < MIN_IMAGE_SIZE:
        raise invalid_parameter(
            "image_size",
            "train",
            f"an int in [{MIN_IMAGE_SIZE}, 4096] for a detector",
            config.image_size,
            fix="Detectors train well on CPU at 320 to 512.",
        )


def level_strides(arch: str) -> tuple[int, ...]:
    """The strides of the FPN levels the head of ``arch`` predicts from."""
    head, _ = split_arch(arch)
    return (8, 16, 32, 64) if head == "fasterrcnn" else (8, 16, 32, 64, 128)


def _anchor_generator(plan: AnchorPlan):  # noqa: ANN202 - torchvision's AnchorGenerator
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    return AnchorGenerator(
        sizes=tuple(plan.sizes), aspect_ratios=(tuple(plan.aspect_ratios),) * len(plan.sizes)
    )


def build_detector(
    arch: str,
    num_classes: int,
    *,
    image_size: int,
    plan: AnchorPlan,
    pretrained: bool,
    frozen_bn: bool | None = None,
) -> Detector:
    """Build ``arch`` for ``num_classes`` classes (background excluded).

    Args:
        arch: ``<head>_<backbone>`` (see :func:`split_arch`).
        num_classes: the dataset's classes.
        image_size: the side every image is resized to inside the model.
        plan: anchors (its strides must be :func:`level_strides` of ``arch``).
        pretrained: the backbone's shipped ImageNet weights (``False``: random init).
        frozen_bn: the backbone's BatchNorm frozen (default: when ``pretrained``); pass
            ``True`` to rebuild a pretrained-backbone detector before loading its weights.

    Raises:
        ConfigError: an unknown arch, or a plan for other levels.
        WeightsUnavailableError: ``pretrained`` and the backbone's weights are absent.
    """
    from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.fcos import FCOSHead
    from torchvision.models.detection.retinanet import RetinaNetHead
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

    head, backbone = split_arch(arch)
    if plan.strides != level_strides(arch):
        raise ConfigError(
            f"The anchor plan has levels at strides {plan.strides}; {arch} predicts from "
            f"{level_strides(arch)}. Plan the anchors with level_strides({arch!r})."
        )
    body = build_body(backbone, pretrained=pretrained, image_size=image_size, frozen_bn=frozen_bn)
    extra = (
        LastLevelMaxPool() if head == "fasterrcnn" else LastLevelP6P7(FPN_CHANNELS, FPN_CHANNELS)
    )
    fpn = BackboneWithFPN(
        body.module,
        return_layers=body.return_layers,
        in_channels_list=body.in_channels,
        out_channels=FPN_CHANNELS,
        extra_blocks=extra,
    )
    common = dict(
        min_size=image_size,
        max_size=image_size,
        image_mean=list(body.mean),
        image_std=list(body.std),
        fixed_size=(image_size, image_size),
    )
    classes = num_classes + 1  # label 0: background
    model: nn.Module
    if head == "fasterrcnn":
        representation = 512
        model = FasterRCNN(
            fpn,
            num_classes=None,
            rpn_anchor_generator=_anchor_generator(plan),
            box_roi_pool=MultiScaleRoIAlign(
                featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=2
            ),
            box_head=TwoMLPHead(FPN_CHANNELS * 7 * 7, representation),
            box_predictor=FastRCNNPredictor(representation, classes),
            rpn_pre_nms_top_n_train=1000,
            rpn_pre_nms_top_n_test=500,
            rpn_post_nms_top_n_train=500,
            rpn_post_nms_top_n_test=300,
            box_batch_size_per_image=256,
            box_score_thresh=_SCORE_THRESH,
            box_detections_per_img=_DETECTIONS,
            **common,
        )
    elif head == "retinanet":
        anchors = _anchor_generator(plan)
        retina_head = RetinaNetHead(FPN_CHANNELS, anchors.num_anchors_per_location()[0], classes)
        # the towers' first HEAD_CONVS convs (RetinaNetHead has no parameter for it)
        for tower in (retina_head.classification_head, retina_head.regression_head):
            tower.conv = tower.conv[:HEAD_CONVS]
        model = RetinaNet(
            fpn,
            num_classes=classes,
            anchor_generator=anchors,
            head=retina_head,
            score_thresh=_SCORE_THRESH,
            detections_per_img=_DETECTIONS,
            **common,
        )
    else:
        model = FCOS(
            fpn,
            num_classes=classes,
            anchor_generator=_anchor_generator(plan),
            head=FCOSHead(FPN_CHANNELS, 1, classes, num_convs=HEAD_CONVS),
            score_thresh=_SCORE_THRESH,
            detections_per_img=_DETECTIONS,
            **common,
        )
    inner = fpn.body
    partial = [getattr(inner, name) for name in body.partial if hasattr(inner, name)]
    return Detector(
        model=model,
        body=inner,
        partial=partial,
        arch=arch,
        image_size=image_size,
        num_classes=num_classes,
        plan=plan,
        weights=body.weights,
    )


def set_trainable(detector: Detector, finetune: str) -> list[nn.Parameter]:
    """Freeze what ``finetune`` keeps and return the parameters left to train."""
    detector.model.requires_grad_(True)
    if finetune != "full":
        detector.body.requires_grad_(False)
    if finetune == "partial":
        for module in detector.partial:
            module.requires_grad_(True)
    return [p for p in detector.model.parameters() if p.requires_grad]
