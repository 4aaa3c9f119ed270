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
