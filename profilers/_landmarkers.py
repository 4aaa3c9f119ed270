"""Landmarkers: cheap probes of how hard a dataset is, and how ImageNet-like.

* The classic landmarkers (1-NN, shrunk linear discriminant analysis, a decision stump,
  Gaussian naive Bayes, the majority class), 3-fold cross-validated on 16x16 grey
  thumbnails of at most :data:`PIXEL_LANDMARK_CAP` images.
* A linear probe (ridge classifier on standardised features, 3-fold) on the pooled
  features of the ImageNet MobileNetV2 backbone that ships offline, and the softmax of
  the shipped EfficientNet-Lite0 ImageNet head (confidence, entropy, and how well its
  top-1 categories explain the classes), on at most :data:`DEEP_LANDMARK_CAP` images of
  :data:`~mlsel.profilers._pixels.THUMB_SIDE` pixels.

The learners are numpy copies of scikit-learn's (:mod:`._learners`) and the ImageNet
models run from an ONNX export (:mod:`._probes`): importing scikit-learn and torch
would take longer than profiling 2,000 images.

Classification only uses the labels; for detection an image's label is the class of
its largest box (``background`` when it has none).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np

from mlsel.profilers import _learners as learners
from mlsel.profilers._probes import ImageNetProbes, run_probes

__all__ = [
    "DEEP_LANDMARK_CAP",
    "PIXEL_LANDMARK_CAP",
    "ImageNetProbes",
    "deep_landmarkers",
    "pixel_landmarkers",
]

logger = logging.getLogger(__name__)

PIXEL_LANDMARK_CAP = 500
DEEP_LANDMARK_CAP = 100
NAN = float("nan")

_PIXEL_LEARNERS: dict[str, learners.Learner] = {
    "lm_majority_acc": learners.majority,
    "lm_1nn_acc": learners.nearest_neighbour,
    "lm_lda_acc": learners.shrunk_lda,
    "lm_stump_acc": learners.stump,
    "lm_nb_acc": learners.gaussian_nb,
}


def _usable(labels: Sequence[str]) -> np.ndarray:
    """Mask of the samples whose class has at least 3 of them (3-fold CV)."""
    counts = Counter(labels)
    return np.array([counts[label] >= 3 for label in labels], dtype=bool)


def _codes(labels: Sequence[str]) -> np.ndarray:
    return np.unique(np.asarray(labels), return_inverse=True)[1]


def pixel_landmarkers(tiny: np.ndarray, labels: Sequence[str], seed: int = 0) -> dict[str, float]:
    """Cross-validated accuracy of simple learners on flattened grey thumbnails."""
    from threadpoolctl import threadpool_limits

    mask = _usable(labels)
    x = tiny[mask].astype(np.float32) / 255.0
    y = _codes([label for label, keep in zip(labels, mask, strict=True) if keep])
    out = {"lm_images": float(len(y))}
    # One BLAS thread: these small problems run beside the ImageNet probes, and a
    # pool of BLAS threads fighting ONNX Runtime's for the same cores is slower.
    with threadpool_limits(limits=1, user_api="blas"):
        for name, learner in _PIXEL_LEARNERS.items():
            start = time.perf_counter()
            out[name] = learners.cv_accuracy(learner, x, y, seed) if len(y) >= 6 else NAN
            logger.debug("%s on %d images: %.3fs", name, len(y), time.perf_counter() - start)
    return out


def deep_landmarkers(
    thumbs: np.ndarray,
    labels: Sequence[str],
    seed: int = 0,
    probes: ImageNetProbes | None = None,
) -> tuple[dict[str, float], list[str]]:
    """ImageNet probes on ``(n, side, side, 3)`` uint8 thumbnails.

    Returns:
        The features, and warnings (e.g. the offline weights are missing; the features
        are then left out, never guessed).
    """
    if len(thumbs) == 0:
        return {}, []
    probes = probes or ImageNetProbes()
    session = probes.get()
    if session is None:
        message = (
            f"ImageNet landmarkers skipped: the offline ImageNet probes could not be "
            f"loaded ({probes.error_})."
        )
        logger.warning(message)
        return {}, [message]
    features, logits = run_probes(session, thumbs)
    out: dict[str, float] = {"lm_deep_images": float(len(thumbs))}
    mask = _usable(labels)
    if mask.sum() >= 6:
        kept = [label for label, keep in zip(labels, mask, strict=True) if keep]
        out["lm_mobilenet_probe_acc"] = learners.cv_accuracy(
            learners.ridge_probe, features[mask], _codes(kept), seed
        )
    logits = logits.astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1) / math.log(probs.shape[1])
    out["imagenet_confidence"] = float(probs.max(axis=1).mean())
    out["imagenet_entropy"] = float(entropy.mean())
    if len(set(labels)) >= 2:
        out["imagenet_label_nmi"] = learners.normalized_mutual_info(
            np.asarray(labels), probs.argmax(axis=1)
        )
    return out, []
