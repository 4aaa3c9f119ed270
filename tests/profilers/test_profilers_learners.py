"""The landmarkers' numpy learners give scikit-learn's answers on scikit-learn's folds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn
from sklearn import discriminant_analysis
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import RidgeClassifier
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from mlsel.profilers import _learners as learners

# (classes, samples, features): pixel-sized, tiny, and more features than samples. In
# (3, 9, 16) every class has two samples per training fold: LDA shrinks none of them, its
# covariance is singular, and its answer is down to rounding.
SHAPES = [(2, 30, 256), (10, 333, 256), (5, 100, 40), (7, 60, 300), (3, 9, 16)]

_SKLEARN_VERSION = tuple(int(part) for part in sklearn.__version__.split(".")[:2])


class _ScalerAsIn18(StandardScaler):
    """``StandardScaler`` rounding as in scikit-learn 1.8+: centred in the data's dtype."""

    def transform(self, X, copy=None):
        X = np.asarray(X)
        return (X - self.mean_.astype(X.dtype)) / self.scale_.astype(X.dtype)


@pytest.fixture(autouse=True)
def _lda_scales_as_the_current_release(monkeypatch: pytest.MonkeyPatch) -> None:
    # scikit-learn 1.8 (StandardScaler's array API support, PR #27113) centres and scales
    # float32 data with the mean and scale rounded to float32; 1.7 and older subtract the
    # float64 mean and round the result. They differ in the last bit, which decides LDA on a
    # singular covariance (the (3, 9, 16) shape). The learner follows the current
    # release, so on an older one the reference LDA is given the current scaling.
    if _SKLEARN_VERSION < (1, 8):
        monkeypatch.setattr(discriminant_analysis, "StandardScaler", _ScalerAsIn18)


def _data(seed: int, k: int, n: int, d: int, continuous: bool = False):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.repeat(np.arange(k), 3), rng.integers(0, k, n - 3 * k)])
    signal = 0.3 * y[:, None] * (np.arange(d) % 5 == 0)
    noise = rng.normal(size=(n, d)) if continuous else rng.integers(0, 256, (n, d)) / 255.0
    return (noise + signal).astype(np.float32), y


def _sklearn_cv(model, x, y, seed: int) -> float:
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer members than folds, collinear features
        return float(cross_val_score(model, x, y, cv=folds).mean())


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("k", "n", "d"), SHAPES)
def test_folds_are_stratified_kfolds(seed: int, k: int, n: int, d: int) -> None:
    _, y = _data(seed, k, n, d)
    labels = np.array([f"class-{code}" for code in y])  # strings sort differently
    expected = np.empty(n, dtype=int)
    splitter = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fold, (_, test) in enumerate(splitter.split(np.zeros(n), labels)):
            expected[test] = fold
    assert (learners.stratified_folds(labels, 3, seed) == expected).all()


LEARNERS = {
    "majority": (learners.majority, lambda seed: DummyClassifier(strategy="most_frequent")),
    "1-NN": (learners.nearest_neighbour, lambda seed: KNeighborsClassifier(n_neighbors=1)),
    "LDA": (
        learners.shrunk_lda,
        lambda seed: LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"),
    ),
    "naive Bayes": (learners.gaussian_nb, lambda seed: GaussianNB()),
    "ridge probe": (
        learners.ridge_probe,
        lambda seed: make_pipeline(StandardScaler(), RidgeClassifier(alpha=10.0)),
    ),
}


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(("k", "n", "d"), SHAPES)
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_accuracy_equals_scikit_learn(name: str, k: int, n: int, d: int, seed: int) -> None:
    mine, theirs = LEARNERS[name]
    x, y = _data(seed, k, n, d, continuous=name == "stump")
    ours = learners.cv_accuracy(mine, x, y, seed)
    assert ours == pytest.approx(_sklearn_cv(theirs(seed), x, y, seed), abs=1e-9)


def _weighted_gini(index: np.ndarray, left: np.ndarray) -> float:
    def gini(part: np.ndarray) -> float:
        p = np.bincount(part) / len(part)
        return 1.0 - float((p**2).sum())

    return (left.sum() * gini(index[left]) + (~left).sum() * gini(index[~left])) / len(index)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("k", "n", "d"), SHAPES)
def test_stump_split_is_as_good_as_scikit_learns(seed: int, k: int, n: int, d: int) -> None:
    # scikit-learn breaks ties between equally good splits at random, so the split
    # itself can differ; its quality cannot
    x, y = _data(seed, k, n, d)
    tree = DecisionTreeClassifier(max_depth=1, random_state=seed).fit(x, y)
    feature, threshold = learners.best_split(x, y, k)
    ours = _weighted_gini(y, x[:, feature] <= threshold)
    theirs = _weighted_gini(y, x[:, tree.tree_.feature[0]] <= tree.tree_.threshold[0])
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_stump_equals_scikit_learn_when_one_split_is_best() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    x = rng.normal(size=(120, 30)).astype(np.float32)
    x[:, 7] += 6.0 * (y == 2)  # one feature sets class 2 apart, by a wide margin
    tree = DecisionTreeClassifier(max_depth=1, random_state=0)
    assert learners.cv_accuracy(learners.stump, x, y, 0) == pytest.approx(
        _sklearn_cv(tree, x, y, 0), abs=1e-12
    )
    assert (learners.stump(x, y, x) == tree.fit(x, y).predict(x)).all()


def test_predictions_equal_scikit_learn_on_one_split() -> None:
    x, y = _data(7, 4, 80, 64, continuous=True)
    train, test = np.arange(80) % 4 != 0, np.arange(80) % 4 == 0
    for name, (mine, theirs) in LEARNERS.items():
        model = theirs(0).fit(x[train], y[train])
        assert (mine(x[train], y[train], x[test]) == model.predict(x[test])).all(), name


def test_one_class_gives_nan_and_learners_see_a_separable_problem() -> None:
    x = np.vstack([np.zeros((6, 4)), np.ones((6, 4))]).astype(np.float32)
    assert np.isnan(learners.cv_accuracy(learners.majority, x, np.zeros(12, dtype=int), 0))
    y = np.repeat([0, 1], 6)
    separable = x + 0.01 * np.arange(12)[:, None]
    for name, (learner, _) in {**LEARNERS, "stump": (learners.stump, None)}.items():
        if name != "majority":
            assert learners.cv_accuracy(learner, separable, y, 0) == 1.0, name


@pytest.mark.parametrize("seed", range(4))
def test_normalized_mutual_info_equals_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = np.array(["cat", "dog", "eel"])[rng.integers(0, 3, 50)]
    guess = rng.integers(0, 5 + seed, 50)
    assert learners.normalized_mutual_info(truth, guess) == pytest.approx(
        normalized_mutual_info_score(truth, guess), abs=1e-12
    )
    assert learners.normalized_mutual_info(truth, truth) == pytest.approx(1.0)
    assert learners.normalized_mutual_info(np.zeros(5), np.zeros(5)) == 1.0
