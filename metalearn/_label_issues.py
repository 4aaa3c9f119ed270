"""Out-of-sample label issues in the training data, confident-learning style.

The idea is cleanlab's (Northcutt et al., "Confident Learning", 2021), without the
dependency:

1. cross-validated probabilities: each training image is scored by a logistic regression
   that never saw it (5-fold stratified ``cross_val_predict``) on the embeddings of a
   shipped backbone (EfficientNet-Lite0 through the embedding cache, so a model trained as
   a frozen probe costs no backbone pass; at the model's image size for a frozen probe,
   else at 96 px);
2. per-class thresholds: ``t_j`` is the mean predicted ``p_j`` over the items labelled
   ``j`` (how confident the model is, on average, on that class);
3. an item is an issue when ``p(given) < t_given`` and some other class ``k`` has
   ``p_k >= t_k``; the suggested label is the most probable such ``k``;
4. issues are ranked by self-confidence ``p(given)``, lowest first.

The data looked at is the training split of the data the next dataset version is built on
(:func:`~mlsel.metalearn.feedback.base_dataset`): the latest version, or the data the model
was trained on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import ConfigError
from mlsel.metalearn.feedback import UNSURE, Base, FeedbackModel

if TYPE_CHECKING:
    import numpy as np

    from mlsel.kernel.dataset import Dataset

__all__ = ["BACKBONE", "FALLBACK_SIZE", "find_label_issues", "label_issue_rows"]

logger = logging.getLogger(__name__)

BACKBONE = "efficientnet_lite0"
FALLBACK_SIZE = 96
_FOLDS = 5


def find_label_issues(probabilities: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
    """``(item, suggested class)`` of each label issue, lowest self-confidence first.

    Args:
        probabilities: ``(N, K)`` out-of-sample probabilities.
        labels: ``(N,)`` given class indices.
    """
    import numpy as np

    n, k = probabilities.shape
    thresholds = np.full(k, np.inf)
    for j in range(k):
        members = labels == j
        if members.any():
            thresholds[j] = probabilities[members, j].mean()
    self_confidence = probabilities[np.arange(n), labels]
    found = []
    for i in range(n):
        given = labels[i]
        if self_confidence[i] >= thresholds[given]:
            continue
        above = probabilities[i] >= thresholds
        above[given] = False
        if above.any():
            suggested = int(np.argmax(np.where(above, probabilities[i], -1.0)))
            found.append((float(self_confidence[i]), i, suggested))
    found.sort()
    return [(i, suggested) for _, i, suggested in found]


def image_size_of(model: FeedbackModel) -> int:
    """The model's image size when it is a frozen probe (its embeddings are cached), else 96."""
    if model.config.finetune in ("linear", "head"):
        return int(model.config.image_size)
    return FALLBACK_SIZE


def cross_validated_probabilities(
    dataset: Dataset, image_size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Out-of-sample probabilities of the training split: ``(probs, labels, classes)``.

    Raises:
        ConfigError: fewer than two classes with two training images or more.
        WeightsUnavailableError: the backbone's shipped weights are not at hand.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlsel.kernel.records import Config
    from mlsel.trainers.devices import resolve_device
    from mlsel.trainers.embeddings import EmbeddingCache
    from mlsel.trainers.frozen import embed_items

    train = dataset.split("train")
    classes = sorted({item.label for item in train})
    labels = np.array([classes.index(item.label) for item in train])
    counts = np.bincount(labels, minlength=len(classes))
    if (counts >= 2).sum() < 2:
        raise ConfigError(
            f"Label issues need two classes with two training images or more; {dataset.name} "
            f"has {dict(zip(classes, counts.tolist(), strict=True))}."
        )
    config = Config(
        backend="torchvision",
        arch=BACKBONE,
        finetune="linear",
        image_size=image_size,
        augment="none",
        epochs=1,
    )
    embedded = embed_items(train, config, EmbeddingCache(), resolve_device("auto"))
    x = embedded.float().cpu().numpy().astype(np.float64)
    folds = int(max(2, min(_FOLDS, counts[counts > 0].min())))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probs = cross_val_predict(model, x, labels, cv=cv, method="predict_proba")
    return np.asarray(probs), labels, classes


def label_issue_rows(
    base: Base, model: FeedbackModel, limit: int, notes: list[str]
) -> tuple[list[dict[str, str]], int]:
    """The export rows of the ``limit`` worst label issues, and how many items were looked at."""
    from mlsel.metalearn._feedback_export import export_file_name

    train = base.dataset.split("train")
    size = image_size_of(model)
    probs, labels, classes = cross_validated_probabilities(base.dataset, size)
    issues = find_label_issues(probs, labels)
    notes.append(
        f"{len(issues)} label issue(s) among {len(train)} training images of {base.ref} "
        f"({_FOLDS}-fold probabilities of {BACKBONE} at {size} px)"
    )
    logger.info(notes[-1])
    rows: list[dict[str, str]] = []
    for i, suggested in issues[:limit]:
        item = train[i]
        rows.append(
            _row(item, classes[labels[i]], classes[suggested], probs[i], suggested, labels[i])
        )
        rows[-1]["file"] = f"{UNSURE}/{export_file_name(item.digest, item.path)}"
    return rows, len(train)


def _row(item: Any, given: str, suggested: str, p: Any, k: int, j: int) -> dict[str, str]:
    return {
        "image_hash": item.digest,
        "source": "dataset",
        "original": item.path,
        "predicted_label": suggested,
        "confidence": f"{float(p[k]):.6f}",
        "score": f"{float(p[j]):.6f}",
        "given_label": given,
        "suggested_label": suggested,
    }
