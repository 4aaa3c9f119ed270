"""An ensemble of linear probes (``extra.ensemble_wd``): one probe per backbone, each with
its own regularisation, averaged as one linear layer on the joined embeddings. Real
digits at 64 px, offline, on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlsel.experiment_store.store import Store
from mlsel.kernel.errors import ConfigError
from mlsel.kernel.records import Config
from mlsel.profilers import read_dataset, write_sample
from mlsel.trainers import load_model, train
from mlsel.trainers.embeddings import EmbeddingCache
from mlsel.trainers.frozen import embed_dataset, fit_linear

PARTS = ("efficientnet_lite0", "mobilenet_v2")
ENSEMBLE = Config(
    backend="torchvision",
    arch="+".join(PARTS),
    finetune="linear",
    image_size=64,
    epochs=1,
    augment="none",
    extra=(("ensemble_wd", "0.1,0.03"),),
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSEL_CACHE_DIR", str(tmp_path / "machine-cache"))


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("data") / "digits"
    return read_dataset(write_sample("digits", folder, classes=3, per_class=12))


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def test_the_ensemble_is_the_geometric_mean_of_its_probes(digits) -> None:
    cache, cpu = EmbeddingCache(None), torch.device("cpu")
    together = fit_linear(embed_dataset(digits, ENSEMBLE, cache, cpu), ENSEMBLE, 3)
    alone = []
    for arch, wd in zip(PARTS, (0.1, 0.03), strict=True):
        config = ENSEMBLE.with_(arch=arch, weight_decay=wd, extra=())
        alone.append(fit_linear(embed_dataset(digits, config, cache, cpu), config, 3).val_scores)
    mean = np.mean([_log_softmax(z) for z in alone], axis=0)
    # the same probabilities: log-softmax of the joined layer equals the mean log-softmax
    np.testing.assert_allclose(_log_softmax(together.val_scores), _log_softmax(mean), atol=1e-4)
    # and not merely the probe of one backbone
    assert np.abs(_log_softmax(together.val_scores) - _log_softmax(alone[0])).max() > 1e-2


def test_an_ensemble_trains_saves_loads_and_predicts_what_it_scored(digits, tmp_path) -> None:
    store = Store.open(tmp_path / "home")
    run_id, result = train(digits, ENSEMBLE, store=store)
    assert result.status == "completed" and result.score is not None
    predictor = load_model(run_id, home=str(tmp_path / "home"))
    val = digits.split("val")
    predicted = predictor.predict([item.path for item in val])
    confusion = np.zeros((3, 3), dtype=int)
    for item, label in zip(val, predicted, strict=True):
        confusion[digits.class_index(item.label), digits.class_index(label)] += 1
    assert confusion.tolist() == [list(row) for row in result.confusion]


@pytest.mark.parametrize("value", ["0.1", "0.1,0,0.1", "0.1,2.0", "a,b"])
def test_an_ensemble_needs_one_weight_decay_in_0_1_per_backbone(digits, tmp_path, value):
    store = Store.open(tmp_path / "home")
    config = ENSEMBLE.with_(extra=(("ensemble_wd", value),))
    with pytest.raises(ConfigError, match="ensemble_wd must give one weight decay"):
        train(digits, config, store=store)
    assert store.runs_frame().height == 0  # refused before any run was logged
