"""Feature encoding: same at fit and predict, saved with the model, mismatch is an error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlsel.kernel.errors import RankerError
from mlsel.kernel.records import Config, DatasetProfile
from mlsel.metalearn.features import FeatureEncoder, candidate_frame, configs_from_frame
from mlsel.metalearn.ranker import RankerModel
from mlsel.metalearn.synthetic import synthetic_frame


def _profile() -> DatasetProfile:
    return DatasetProfile(
        "fp1", "classify", {"images_per_class_min": 12.0, "n_classes": 3.0}, "t", name="tiny"
    )


def test_candidate_frame_round_trips_configs() -> None:
    configs = [
        Config(backend="torchvision", arch="efficientnet_lite0", lr=3e-4, extra=(("mixup", 0.2),)),
        Config(backend="torchvision", arch="small_cnn", pretrained=None, finetune="full"),
    ]
    frame = candidate_frame(_profile(), configs)
    assert configs_from_frame(frame) == configs
    assert frame["feat_images_per_class_min"].to_list() == [12.0, 12.0]


def test_encoder_round_trip_gives_identical_matrix() -> None:
    frame = synthetic_frame(3)
    encoder = FeatureEncoder().fit(frame)
    again = FeatureEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert again.feature_names_ == encoder.feature_names_
    np.testing.assert_array_equal(encoder.transform(frame), again.transform(frame))
    assert "feat_images_per_class_min" in encoder.feature_names_
    assert "arch_imagenet_top1" in encoder.feature_names_
    lr = encoder.feature_names_.index("cfg_lr")
    assert set(np.round(encoder.transform(frame)[:, lr], 6)) == {-4.0, -3.0}


def test_encoder_version_and_name_mismatch_raise() -> None:
    state = FeatureEncoder().fit(synthetic_frame(2)).to_dict()
    with pytest.raises(RankerError, match="encoding version"):
        FeatureEncoder.from_dict({**state, "version": 999})
    with pytest.raises(RankerError, match="feature names"):
        FeatureEncoder.from_dict({**state, "feature_names": state["feature_names"][:-1]})
    with pytest.raises(RankerError, match="not fitted"):
        FeatureEncoder().transform(synthetic_frame(2))


def test_ranker_save_load_predicts_the_same(tmp_path) -> None:
    frame = synthetic_frame(4)
    model = RankerModel(n_estimators=20).fit(frame)
    model.save(tmp_path / "r")
    loaded = RankerModel.load(tmp_path / "r")
    np.testing.assert_allclose(model.predict(frame), loaded.predict(frame))
    assert loaded.n_datasets_ == 4
    # a model file whose features differ from its encoder is refused
    encoder = json.loads((tmp_path / "r" / "encoder.json").read_text())
    encoder["meta"] = encoder["meta"][:-1]
    encoder["feature_names"] = [n for n in encoder["feature_names"] if n != "feat_n_train"]
    (tmp_path / "r" / "encoder.json").write_text(json.dumps(encoder))
    with pytest.raises(RankerError):
        RankerModel.load(tmp_path / "r")
    with pytest.raises(RankerError, match="not fitted"):
        RankerModel().predict(frame)


def _task_frame():
    """Two classification datasets of 100 and 1,000 images, two detection ones of 200."""
    import polars as pl

    cls = Config(backend="torchvision", arch="efficientnet_lite0", finetune="linear")
    det = Config(backend="torchvision", arch="retinanet_efficientnet_lite0", finetune="head")
    parts = []
    for name, task, n, config in (
        ("c1", "classify", 100.0, cls),
        ("c2", "classify", 1000.0, cls),
        ("d1", "detect", 200.0, det),
        ("d2", "detect", 200.0, det),
    ):
        features = {"n_images": n, "n_classes": 2.0, "lm_images": n, "n_test": 0.0}
        part = candidate_frame(DatasetProfile(name, task, features, "t"), [config])
        parts.append(part.with_columns(score=pl.lit(0.5), status=pl.lit("completed")))
    return pl.concat(parts, how="diagonal_relaxed"), cls, det


def test_a_profile_is_clipped_into_its_tasks_span_and_saved_with_it() -> None:
    frame, cls, det = _task_frame()
    encoder = FeatureEncoder().fit(frame)
    n = encoder.feature_names_.index("feat_n_images")

    def encoded(task: str, images: float, config: Config, enc: FeatureEncoder) -> float:
        profile = DatasetProfile("q", task, {"n_images": images, "n_classes": 2.0}, "t")
        return float(enc.transform(candidate_frame(profile, [config]))[0, n])

    # the detection datasets all had 200 images: a detection profile of 160 reads as 200,
    # while a classification profile of 160 lies inside its task's span and stays
    assert encoded("detect", 160.0, det, encoder) == 200.0
    assert encoded("classify", 160.0, cls, encoder) == 160.0
    assert encoded("classify", 5000.0, cls, encoder) == 1000.0
    again = FeatureEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert encoded("detect", 160.0, det, again) == 200.0
    # an encoder saved before the spans were kept clips nothing
    old = FeatureEncoder.from_dict({k: v for k, v in encoder.to_dict().items() if k != "ranges"})
    assert encoded("detect", 160.0, det, old) == 160.0


def test_measurement_entries_of_a_profile_are_not_ranker_inputs() -> None:
    frame, _, _ = _task_frame()
    names = FeatureEncoder().fit(frame).feature_names_
    assert "feat_n_images" in names
    assert "feat_lm_images" not in names and "feat_n_test" not in names


def test_profile_features_read_the_same_from_numbers_and_from_text() -> None:
    import polars as pl

    frame = synthetic_frame(3)
    feats = [c for c in frame.columns if c.startswith("feat_")]
    as_text = frame.with_columns(pl.col(c).cast(pl.Utf8) for c in feats)
    encoder = FeatureEncoder().fit(frame)
    np.testing.assert_array_equal(encoder.transform(frame), encoder.transform(as_text))
