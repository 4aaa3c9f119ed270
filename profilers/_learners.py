"""The landmarkers' small learners, in numpy: fast to import, equal to scikit-learn's.

Importing scikit-learn takes about 1.5 s, longer than fitting all of these on 500
thumbnails, so the profiler carries its own. Each one reproduces the scikit-learn
estimator named in its docstring, with the same defaults; the tests compare them on
the same folds. The folds are those of ``StratifiedKFold(3, shuffle=True,
random_state=seed)``, drawn with the same random stream, so cross-validated accuracies
match scikit-learn's too.

A learner is ``fit_predict(x_train, y_train, x_test) -> y_pred`` on integer class
codes ``0..k-1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = [
    "Learner",
    "best_split",
    "cv_accuracy",
    "gaussian_nb",
    "majority",
    "nearest_neighbour",
    "normalized_mutual_info",
    "ridge_probe",
    "shrunk_lda",
    "stratified_folds",
    "stump",
]

_STUMP_BLOCK = 64  # features scored at once: bounds memory with many classes

Learner = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def stratified_folds(codes: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """Test-fold index of each sample, as ``StratifiedKFold(shuffle=True)`` draws it."""
    codes = np.asarray(codes)
    # classes numbered by first appearance, as scikit-learn does before allocating
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    _, by_appearance = np.unique(first, return_inverse=True)
    encoded = by_appearance[inverse]
    n_classes = len(first)
    ordered = np.sort(encoded)
    allocation = np.array(
        [np.bincount(ordered[i::n_splits], minlength=n_classes) for i in range(n_splits)]
    )
    rng = np.random.RandomState(seed)
    folds = np.empty(len(codes), dtype=int)
    for k in range(n_classes):
        for_class = np.arange(n_splits).repeat(allocation[:, k])
        rng.shuffle(for_class)
        folds[encoded == k] = for_class
    return folds


def cv_accuracy(learner: Learner, x: np.ndarray, codes: np.ndarray, seed: int) -> float:
    """Mean accuracy over 3 stratified folds (NaN with fewer than two classes)."""
    if len(np.unique(codes)) < 2:
        return math.nan
    folds = stratified_folds(codes, 3, seed)
    scores = []
    for fold in range(3):
        test = folds == fold
        predicted = learner(x[~test], codes[~test], x[test])
        scores.append(float((predicted == codes[test]).mean()))
    return float(np.mean(scores))


def _classes(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted classes present in ``y`` and each sample's index among them."""
    return np.unique(y, return_inverse=True)


def majority(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """``DummyClassifier(strategy="most_frequent")``."""
    classes, index = _classes(y_train)
    return np.full(len(x_test), classes[np.bincount(index).argmax()])


def nearest_neighbour(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """``KNeighborsClassifier(n_neighbors=1)``: Euclidean distance."""
    train = x_train.astype(np.float64)
    test = x_test.astype(np.float64)
    distance = (test**2).sum(1)[:, None] - 2 * test @ train.T + (train**2).sum(1)[None, :]
    return y_train[distance.argmin(axis=1)]


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``StandardScaler``: (scaled x, mean, scale), constant features kept at scale 1."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    return (x - mean) / scale, mean, scale


def _ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """``sklearn.covariance.ledoit_wolf(x)[0]``: the shrunk empirical covariance."""
    n_samples, n_features = x.shape
    x = x - x.mean(axis=0)
    empirical = x.T @ x / n_samples
    if n_features == 1:
        return empirical
    # sklearn sums the entries of X2'X2 and the squares of X'X's; with fewer samples than
    # features the same sums come cheaper from the rows: 1'(X2'X2)1 = |X2 1|^2 and
    # |X'X|_F = |XX'|_F
    squared = x**2
    trace = squared.sum(axis=0) / n_samples
    mu = trace.sum() / n_features
    beta_ = float((squared.sum(axis=1) ** 2).sum())
    gram = x @ x.T if n_samples < n_features else empirical * n_samples
    delta_ = float((gram**2).sum()) / n_samples**2
    beta = (beta_ / n_samples - delta_) / (n_features * n_samples)
    delta = (delta_ - 2.0 * mu * trace.sum() + n_features * mu**2) / n_features
    shrinkage = 0.0 if beta == 0 else min(beta, delta) / delta
    shrunk = (1.0 - shrinkage) * empirical
    shrunk.flat[:: n_features + 1] += shrinkage * np.trace(empirical) / n_features
    return shrunk


def shrunk_lda(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")``."""
    x = x_train.astype(np.float64)
    classes, index = _classes(y_train)
    priors = np.bincount(index) / len(index)
    means = np.array([x[index == k].mean(axis=0) for k in range(len(classes))])
    covariance = np.zeros((x.shape[1], x.shape[1]))
    for k in range(len(classes)):
        scaled, _, scale = _standardise(x[index == k])
        covariance += priors[k] * (scale[:, None] * _ledoit_wolf(scaled) * scale[None, :])
    try:  # the shrunk covariance is positive definite: solve is exact and 20x faster
        coef = np.linalg.solve(covariance, means.T).T
    except np.linalg.LinAlgError:  # no shrinkage and fewer samples than features
        coef = np.linalg.lstsq(covariance, means.T, rcond=None)[0].T
    intercept = -0.5 * np.einsum("kd,kd->k", means, coef) + np.log(priors)
    return classes[(x_test.astype(np.float64) @ coef.T + intercept).argmax(axis=1)]


def gaussian_nb(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """``GaussianNB()``: variances smoothed by 1e-9 of the largest feature variance."""
    x = x_train.astype(np.float64)
    classes, index = _classes(y_train)
    epsilon = 1e-9 * x.var(axis=0).max()
    test = x_test.astype(np.float64)
    joint = np.empty((len(test), len(classes)))
    for k in range(len(classes)):
        members = x[index == k]
        mean, var = members.mean(axis=0), members.var(axis=0) + epsilon
        joint[:, k] = (
            math.log(len(members) / len(x))
            - 0.5 * np.log(2.0 * np.pi * var).sum()
            - 0.5 * (((test - mean) ** 2) / var).sum(axis=1)
        )
    return classes[joint.argmax(axis=1)]


def best_split(x: np.ndarray, index: np.ndarray, k: int) -> tuple[int, float] | None:
    """``(feature, threshold)`` of the Gini-best split of float32 ``x``, or ``None``.

    Among equally good splits scikit-learn picks a feature at random; this takes the
    first, so on ties the two trees can differ (both splits are optimal).
    """
    n = len(index)
    if n < 2:
        return None
    counts = np.bincount(index, minlength=k)
    one_hot = np.eye(k, dtype=np.float32)[index]
    n_left = np.arange(1, n, dtype=np.float64)[:, None]
    best = (-np.inf, 0, 0)  # (score, feature, position)
    for start in range(0, x.shape[1], _STUMP_BLOCK):
        block = x[:, start : start + _STUMP_BLOCK]
        order = np.argsort(block, axis=0, kind="stable")
        values = np.take_along_axis(block, order, axis=0)
        left = np.cumsum(one_hot[order], axis=0)[:-1]  # (n-1, features, k)
        right = counts - left
        # Gini's proxy: the larger the squared counts over the side's size, the purer
        score = (left**2).sum(axis=2) / n_left + (right**2).sum(axis=2) / (n - n_left)
        score[values[1:] <= values[:-1]] = -np.inf  # no threshold between equal values
        position, feature = divmod(int(np.argmax(score.T)), n - 1)[::-1]
        if score[position, feature] > best[0]:
            best = (score[position, feature], start + feature, position)
    if not np.isfinite(best[0]):
        return None
    _, feature, position = best
    values = np.sort(x[:, feature])
    low, high = float(values[position]), float(values[position + 1])
    threshold = (low + high) / 2.0
    if threshold == high:  # rounding: keep the threshold below the upper value
        threshold = low
    return feature, threshold


def stump(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """``DecisionTreeClassifier(max_depth=1)``: the one Gini split that helps most."""
    x = x_train.astype(np.float32)  # the tree sees float32, thresholds in float64
    classes, index = _classes(y_train)
    k = len(classes)
    split = best_split(x, index, k)
    if split is None:
        return np.full(len(x_test), classes[np.bincount(index, minlength=k).argmax()])
    feature, threshold = split
    goes_left = x[:, feature] <= threshold
    left_class = classes[np.bincount(index[goes_left], minlength=k).argmax()]
    right_class = classes[np.bincount(index[~goes_left], minlength=k).argmax()]
    test_left = x_test.astype(np.float32)[:, feature] <= threshold
    return np.where(test_left, left_class, right_class)


def ridge_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """``make_pipeline(StandardScaler(), RidgeClassifier(alpha=10.0))``."""
    alpha = 10.0
    scaled, mean, scale = _standardise(x_train.astype(np.float64))
    classes, index = _classes(y_train)
    targets = -np.ones((len(index), len(classes)))
    targets[np.arange(len(index)), index] = 1.0
    offset = scaled.mean(axis=0)
    centred = scaled - offset
    target_mean = targets.mean(axis=0)
    n, d = centred.shape
    if d > n:  # the kernel form: an n x n system instead of d x d
        dual = np.linalg.solve(centred @ centred.T + alpha * np.eye(n), targets - target_mean)
        weights = centred.T @ dual
    else:
        weights = np.linalg.solve(
            centred.T @ centred + alpha * np.eye(d), centred.T @ (targets - target_mean)
        )
    test = (x_test.astype(np.float64) - mean) / scale
    scores = (test - offset) @ weights + target_mean
    return classes[scores.argmax(axis=1)]


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """``normalized_mutual_info_score(a, b)``: mutual information over the mean entropy."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    ka, kb = ia.max() + 1, ib.max() + 1
    if ka == kb == 1:
        return 1.0
    table = np.zeros((ka, kb))
    np.add.at(table, (ia, ib), 1.0)
    joint = table / table.sum()
    outer = joint.sum(axis=1)[:, None] * joint.sum(axis=0)[None, :]
    nonzero = joint > 0
    mi = float((joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])).sum())
    if abs(mi) < np.finfo(np.float64).eps:
        return 0.0
    mean_entropy = (_entropy(np.bincount(ia)) + _entropy(np.bincount(ib))) / 2.0
    return mi / max(mean_entropy, np.finfo(np.float64).eps)
