"""The catalogue is the one source of truth: everything that lists architectures,
backends or choices agrees with it, and the weights it finds are the trainers' weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsel.kernel import catalogue
from mlsel.kernel.errors import ConfigError, StoreError, invalid_parameter
from mlsel.kernel.home import Home
from mlsel.kernel.records import Config


def test_every_architecture_has_a_card_that_agrees() -> None:
    from mlsel.metalearn.cards import architecture_card

    for name, entry in catalogue.ARCHITECTURES.items():
        card = architecture_card(name)
        assert card is not None, name
        assert (card.backend, card.task) == (entry.backend, entry.task), name
        assert (card.imagenet_top1 is not None or entry.task == "detect") == entry.pretrainable


def test_the_space_the_zoo_and_the_backends_read_the_catalogue() -> None:
    from mlsel.metalearn.space import ARCHITECTURES, CandidateSpace
    from mlsel.trainers import run, ultralytics_backend, zoo

    space = CandidateSpace()
    for task in catalogue.TASKS:
        expected = {a.model for a in catalogue.ARCHITECTURES.values() if a.task == task}
        assert set(space.models(task)) == expected
    assert ARCHITECTURES == {n: (a.backend, a.task) for n, a in catalogue.ARCHITECTURES.items()}
    assert set(zoo.TORCHVISION_ARCHS) == {
        n for n, a in catalogue.ARCHITECTURES.items() if a.backend == "torchvision"
    }
    assert set(ultralytics_backend.CLASSIFY_ARCHS) | set(ultralytics_backend.DETECT_ARCHS) == {
        n for n, a in catalogue.ARCHITECTURES.items() if a.backend == "ultralytics"
    }
    for backend in catalogue.TRAINABLE_BACKENDS:
        assert run.get_backend(backend).name == backend
    assert set(catalogue.TRAINABLE_BACKENDS) < set(catalogue.BACKENDS)
    for name, choices in (
        ("finetune", catalogue.FINETUNE_MODES),
        ("augment", catalogue.AUGMENT_PRESETS),
        ("optimizer", catalogue.OPTIMIZERS),
        ("schedule", catalogue.SCHEDULES),
    ):
        assert getattr(space, name) == choices


def test_config_checks_accept_exactly_the_catalogue_choices() -> None:
    from mlsel.trainers.checks import check_config

    base = Config("torchvision", "resnet18", pretrained=None, finetune="full")
    for optimizer in catalogue.OPTIMIZERS:
        check_config(base.with_(optimizer=optimizer))
    with pytest.raises(ConfigError, match="'optimizer' parameter of train must be"):
        check_config(base.with_(optimizer="lamb"))
    with pytest.raises(ConfigError, match="'backend' parameter of train"):
        check_config(base.with_(backend="external"))  # recorded, never trained


def test_weights_in_the_home_weights_folder_make_a_pretrained_config_available(
    mlsel_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsel.metalearn.space import CandidateSpace, available

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    resnet = Config("torchvision", "resnet50", pretrained="imagenet")
    assert not catalogue.weights_available(resnet) and not available(resnet)
    pretrained = {c.arch for c in CandidateSpace().candidates("classify") if c.pretrained}
    assert "resnet50" not in pretrained
    weights = Home.resolve().weights
    weights.mkdir(parents=True)
    (weights / "resnet50-11ad3fa6.pth").write_bytes(b"")  # torchvision's own file name
    assert catalogue.weights_available(resnet) and available(resnet)
    pretrained = {c.arch for c in CandidateSpace().candidates("classify") if c.pretrained}
    assert "resnet50" in pretrained
    assert not catalogue.weights_available(resnet.with_(arch="resnet18"))


def test_the_hub_cache_and_the_ultralytics_folder_count_and_small_cnn_never_does(
    mlsel_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "convnext_tiny-983f1562.pth").write_bytes(b"")
    assert catalogue.weights_available(Config("torchvision", "convnext_tiny"))
    yolo = Config("ultralytics", "yolo11n", pretrained="imagenet")
    assert not catalogue.weights_available(yolo)
    Home.resolve().ultralytics.mkdir(parents=True)
    (Home.resolve().ultralytics / "yolo11n.pt").write_bytes(b"")
    assert catalogue.weights_available(yolo)
    assert not catalogue.weights_available(yolo.with_(arch="yolo11n-cls"))
    assert not catalogue.weights_available(Config("torchvision", "small_cnn"))


def test_shipped_weights_are_found_where_their_wheels_put_them() -> None:
    for arch, shipped in catalogue.SHIPPED_WEIGHTS.items():
        assert catalogue.ARCHITECTURES[arch].shipped is shipped
        if not shipped.installed():
            pytest.skip(f"{shipped.install} has not been run here")
        assert shipped.path().is_file()
        assert catalogue.weights_available(Config("torchvision", arch))


def test_the_one_message_template() -> None:
    error = invalid_parameter("epochs", "run", "an int in [1, inf)", -3)
    assert isinstance(error, ConfigError)
    assert str(error) == "The 'epochs' parameter of run must be an int in [1, inf). Got -3 instead."
    store_error = invalid_parameter("source", "the store", "local", "x", fix="Pass local.")
    assert isinstance(store_error, StoreError) is False
    typed = invalid_parameter("source", "the store", "local", "x", error=StoreError)
    assert isinstance(typed, StoreError) and str(typed).endswith("Got 'x' instead.")
    assert str(store_error).endswith("Got 'x' instead. Pass local.")
