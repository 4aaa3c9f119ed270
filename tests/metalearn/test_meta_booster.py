"""The ranker's fast path to LightGBM's C library gives what ``lightgbm.Booster`` gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlsel.metalearn import _booster
from mlsel.metalearn.ranker import RankerModel
from mlsel.metalearn.synthetic import synthetic_frame


@pytest.fixture(scope="module")
def saved_ranker(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    frame = synthetic_frame(8)
    folder = RankerModel(n_estimators=40).fit(frame).save(tmp_path_factory.mktemp("ranker"))
    encoded = RankerModel.load(folder).encoder_.transform(frame)
    return folder / "model.txt", encoded


def test_the_fast_path_predicts_exactly_as_lightgbm_booster(saved_ranker) -> None:
    import lightgbm as lgb

    model_file, X = saved_ranker
    if not _booster.fast_path_available():
        pytest.skip("this LightGBM is not one the fast path knows")
    fast, public = _booster.SavedBooster(model_file), lgb.Booster(model_file=str(model_file))
    assert fast.feature_name() == public.feature_name()
    np.testing.assert_allclose(fast.predict(X), public.predict(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        fast.predict(X, pred_contrib=True), public.predict(X, pred_contrib=True), atol=1e-12
    )
    X_missing = X.copy()
    X_missing[::3, ::2] = np.nan  # missing values take LightGBM's default branches
    np.testing.assert_allclose(fast.predict(X_missing), public.predict(X_missing), atol=1e-12)


def test_an_unknown_lightgbm_version_takes_the_public_booster(saved_ranker, monkeypatch) -> None:
    import lightgbm as lgb

    model_file, X = saved_ranker
    monkeypatch.setattr(_booster.metadata, "version", lambda name: "99.0.0")
    _booster._library.cache_clear()
    try:
        assert not _booster.fast_path_available()
        booster = _booster.load_booster(model_file)
        assert isinstance(booster, lgb.Booster)
        assert np.asarray(booster.predict(X)).shape == (X.shape[0],)
    finally:
        monkeypatch.undo()
        _booster._library.cache_clear()
    assert _booster.fast_path_available() == (
        _booster._major(lgb.__version__) in _booster.FAST_PATH_VERSIONS
    )
