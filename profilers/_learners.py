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


def _standard_scaled(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``StandardScaler().fit_transform(x)`` as scikit-learn >= 1.8 rounds it: (scaled, scale).

    The mean and variance come from float64 sums (the two-pass variance with its
    correction term); a feature whose variance is within rounding of zero keeps scale 1.
    ``x`` keeps its dtype: float32 data is centred and scaled with the mean and scale
    rounded to float32 (scikit-learn 1.8's array-API ``transform``; 1.7 and older
    subtracted the float64 mean and rounded the result). The scale is float64.
    """
    n_samples = len(x)
    mean = np.sum(x, axis=0, dtype=np.float64) / n_samples
    deviation = x - mean
    correction = np.sum(deviation, axis=0, dtype=np.float64)
    squares = np.sum(deviation**2, axis=0, dtype=np.float64) - correction**2 / n_samples
    variance = squares / n_samples
    eps = np.finfo(np.float64).eps
    constant = variance <= n_samples * eps * variance + (n_samples * mean * eps) ** 2
    scale = np.sqrt(variance)
    scale[constant] = 1.0
    return (x - mean.astype(x.dtype)) / scale.astype(x.dtype), scale


def _ledoit_wolf_shrinkage(x: np.ndarray, block_size: int = 1000) -> float:
    """``sklearn.covariance.ledoit_wolf_shrinkage(x, assume_centered=True)``.

    The sums run in ``x``'s dtype over the same blocks of features in the same order
    (numpy's scalar promotion included), so the rounding is scikit-learn's too. That
    matters when the true shrinkage is 0 (a class of two samples): the answer is then
    whatever the rounding leaves.
    """
    n_samples, n_features = x.shape
    x2 = x**2
    emp_cov_trace = np.sum(x2, axis=0) / n_samples
    mu = np.sum(emp_cov_trace) / n_features
    n_splits = int(n_features / block_size)
    blocks = [slice(block_size * i, block_size * (i + 1)) for i in range(n_splits)]
    blocks.append(slice(block_size * n_splits, None))
    beta_ = 0.0  # sum of the entries of X2'X2
    delta_ = 0.0  # sum of the squared entries of X'X
    for rows in blocks:
        for cols in blocks:
            beta_ += np.sum(np.dot(x2.T[rows], x2[:, cols]))
            delta_ += np.sum(np.dot(x.T[rows], x[:, cols]) ** 2)
    delta_ /= n_samples**2
    beta = 1.0 / (n_features * n_samples) * (beta_ / n_samples - delta_)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum() + n_features * mu**2) / n_features
    beta = min(beta, delta)  # never shrink past the identity
    return 0 if beta == 0 else beta / delta  # a float32 scalar for float32 data, as there


def _ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """``sklearn.covariance.ledoit_wolf(x)``: (shrunk covariance, shrinkage), in x's dtype."""
    x = x - x.mean(axis=0)
    n_samples, n_features = x.shape
    if n_features == 1:
        return np.atleast_2d((x**2).mean()), 0.0
    shrinkage = _ledoit_wolf_shrinkage(x)
    empirical = np.dot(x.T, x) / n_samples
    mu = np.sum(np.trace(empirical)) / n_features
    shrunk = (1.0 - shrinkage) * empirical
    shrunk.flat[:: n_features + 1] += shrinkage * mu
    return shrunk, shrinkage


def shrunk_lda(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")``.

    Computed in scikit-learn's dtypes and order (float32 data stays float32 up to the
    pooled covariance), so that it agrees even when every class has at most two training
    samples: no class is then shrunk, the pooled covariance is singular, and the answer
    is decided by rounding and by the cut-off of scikit-learn's least-squares solve.
    """
    x = x_train if x_train.dtype in (np.float32, np.float64) else x_train.astype(np.float64)
    classes, index = _classes(y_train)
    counts = np.bincount(index)
    priors = counts.astype(x.dtype) / float(len(index))
    if abs(priors.sum() - 1.0) > 1e-5:  # float32 rounding over many classes
        priors = priors / priors.sum()
    means = np.zeros((len(classes), x.shape[1]), dtype=x.dtype)
    np.add.at(means, index, x)
    means /= counts[:, None]
    covariance = np.zeros((x.shape[1], x.shape[1]))
    shrinkages = []
    for k in range(len(classes)):
        scaled, scale = _standard_scaled(x[index == k])
        shrunk, shrinkage = _ledoit_wolf(scaled)
        covariance += priors[k] * (scale[:, None] * shrunk * scale[None, :])
        shrinkages.append(shrinkage)
    if max(shrinkages) > 0:  # positive definite: solve agrees with lstsq and is 4x faster
        coef = np.linalg.solve(covariance, means.T).T
    else:
        # No class was shrunk, the covariance is singular, and which of its rounding-level
        # singular values pass lstsq's cut-off depends on the LAPACK build and its BLAS
        # threads: only scikit-learn's own call (scipy's, not numpy's) gives its answer.
        # scipy comes with scikit-learn; it is imported only for such tiny classes.
        from scipy import linalg

        coef = linalg.lstsq(covariance, means.T)[0].T
    intercept = -0.5 * np.diag(np.dot(means, coef.T)) + np.log(priors)
    test = np.asarray(x_test)
    if len(classes) == 2:  # scikit-learn keeps one discriminant, in the data's dtype
        difference = np.asarray(coef[1] - coef[0], dtype=x.dtype).reshape(1, -1)
        offset = np.asarray(intercept[1] - intercept[0], dtype=x.dtype).reshape(1)
        return classes[((test @ difference.T + offset)[:, 0] > 0).astype(int)]
    return classes[(test @ coef.T + intercept).argmax(axis=1)]


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
