"""Classification metrics from labels and scores, equal to scikit-learn's.

Computed from the confusion matrix with NumPy (no sklearn import on the hot path);
``tests/trainers`` checks every value against ``sklearn.metrics`` with
``zero_division=0``. The primary score of a classification run is ``f1_macro``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["PRIMARY_METRIC", "classification_metrics", "confusion_matrix"]

PRIMARY_METRIC = "f1_macro"


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` counts, rows = true class, columns = predicted class."""
    import numpy as np

    flat = np.asarray(y_true, dtype=np.int64) * num_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    import numpy as np

    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def classification_metrics(
    y_true: np.ndarray, scores: np.ndarray
) -> tuple[dict[str, float], np.ndarray]:
    """Every metric of one evaluation, and the confusion matrix.

    Args:
        y_true: true class indices, shape ``(N,)``.
        scores: class scores or logits, shape ``(N, C)``; the prediction is the argmax.

    Returns:
        ``(metrics, confusion)``: ``accuracy``, ``top5_accuracy`` (top-min(5, C)),
        ``precision_/recall_/f1_`` ``macro`` and ``weighted``, ``n_val``; confusion
        ``(C, C)``. Macro averages run over every class of the dataset (as sklearn's
        ``labels=range(C)``), a class without support or predictions counting 0.
    """
    import numpy as np

    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n, c = s.shape
    pred = s.argmax(axis=1)
    cm = confusion_matrix(y, pred, c)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * tp, support + predicted)
    weights = support / support.sum() if support.sum() else np.zeros(c)
    k = min(5, c)
    topk = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < c else np.tile(np.arange(c), (n, 1))
    metrics = {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "top5_accuracy": float((topk == y[:, None]).any(axis=1).mean()) if n else 0.0,
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "precision_weighted": float((precision * weights).sum()),
        "recall_weighted": float((recall * weights).sum()),
        "f1_weighted": float((f1 * weights).sum()),
        "n_val": float(n),
    }
    return metrics, cm
