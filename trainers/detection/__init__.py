"""Object detectors on the shipped ImageNet backbones, trained offline on YOLO datasets.

torchvision's Faster R-CNN, RetinaNet and FCOS over an FPN on MobileNetV2 or
EfficientNet-Lite0 (:mod:`.models`), their anchors planned from the training boxes
(:mod:`.anchors`), trained and scored with COCO mAP (:mod:`.train`, :mod:`.evaluate`,
:mod:`.coco`), saved (:mod:`.saved`) and read back to predict boxes in each image's own
pixels (:mod:`.predict`). The torchvision backend dispatches here when an arch's task is
``detect``. Importing this package does not import torch.
"""

from __future__ import annotations

from mlsel.trainers.detection.anchors import AnchorPlan, plan_anchors
from mlsel.trainers.detection.models import DETECTOR_ARCHS, HEADS, split_arch
from mlsel.trainers.detection.predict import DetectionPredictor

__all__ = [
    "DETECTOR_ARCHS",
    "HEADS",
    "AnchorPlan",
    "DetectionPredictor",
    "plan_anchors",
    "split_arch",
]
