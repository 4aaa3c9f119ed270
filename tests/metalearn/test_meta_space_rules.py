"""Candidate space (Optuna round trip, grid) and the production rules."""

from __future__ import annotations

import optuna

from mlsel.kernel import catalogue
from mlsel.kernel.catalogue import SHIPPED_WEIGHTS
from mlsel.kernel.records import Config, DatasetProfile
from mlsel.metalearn.cards import architecture_cards
from mlsel.metalearn.rules import RulesRanker, pretrained_image_size
from mlsel.metalearn.space import ARCHITECTURES, CandidateSpace, available

FEW = DatasetProfile("fp", "classify", {"images_per_class_min": 12.0, "n_train": 60.0}, "t")
MANY = DatasetProfile(
    "fp2", "classify", {"images_per_class_min": 900.0, "images_per_class_median": 1000.0}, "t"
)


def test_every_architecture_has_a_card() -> None:
    cards = architecture_cards()
    assert set(ARCHITECTURES) <= set(cards)
    assert cards["efficientnet_b0"].params_m == 5.3
    assert cards["small_cnn"].imagenet_top1 is None


def test_enqueued_params_reproduce_the_config() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = CandidateSpace()
    config = Config(
        backend="torchvision",
        arch="efficientnet_lite0",
        lr=3e-4,
        batch_size=16,
        epochs=7,
        augment="strong",
        min_per_class=50,
        seed=3,
    )
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(config.to_params())
    trial = study.ask()
    assert space.sample_config(trial, "classify") == config
    assert set(trial.params) == set(config.to_params())


def test_sampled_configs_are_trainable_here() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = CandidateSpace()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        config = space.sample_config(study.ask(), "detect", fixed={"epochs": 3})
        assert config.arch in catalogue.architectures(task="detect") and config.epochs == 3
        assert config.pretrained is None or available(config)
        if config.backend == "torchvision":  # a detector on a shipped backbone
            assert 320 <= config.image_size <= 512 and config.finetune != "linear"


def archs_in_order() -> list[str]:
    """Shipped backbones in the catalogue's order (the order their embeddings join)."""
    return [a for a in catalogue.ARCHITECTURES if a in SHIPPED_WEIGHTS]


def test_pretrained_resolution_follows_the_images() -> None:
    tiny_grey = {"width_median": 28.0, "grayscale_share": 1.0}
    colour = {"width_median": 300.0, "grayscale_share": 0.0}
    assert pretrained_image_size(tiny_grey)[0] == 64
    size, why = pretrained_image_size(colour)
    assert size == 224 and "colour images (300 px)" in why
    for features, size in ((tiny_grey, 64), (colour, 224)):
        profile = DatasetProfile("f", "classify", features, "1")
        pretrained = [c for c in CandidateSpace().candidates("classify", profile) if c.pretrained]
        assert {c.image_size for c in pretrained if c.backend == "torchvision"} == {size}


def test_candidates_follow_the_profile_and_weights() -> None:
    configs = CandidateSpace().candidates("classify", FEW)
    archs = {c.arch for c in configs if c.pretrained}
    assert {"efficientnet_lite0", "mobilenet_v2"} <= archs
    assert all(available(c) for c in configs)
    trained = [c for c in configs if c.finetune != "linear"]
    assert all(c.min_per_class == 50 for c in trained)  # few-shot: duplicate to 50 a class
    probes = [c for c in configs if c.finetune == "linear"]
    # a linear probe of every shipped backbone, and of all of them concatenated
    assert {p.arch for p in probes} >= set(SHIPPED_WEIGHTS) | {"+".join(archs_in_order())}
    assert all(p.epochs == 1 and p.pretrained == "imagenet" for p in probes)
    seen = Config(backend="timm", arch="volo_d1_384")
    assert seen in CandidateSpace().candidates("classify", FEW, seen=[seen])


def test_rules_prefer_frozen_small_pretrained_for_few_images() -> None:
    rules = RulesRanker()
    configs = CandidateSpace().candidates("classify", FEW)
    best = configs[int(rules.score(FEW, configs).argmax())]
    assert best.pretrained == "imagenet" and best.finetune == "linear"
    assert best.arch in SHIPPED_WEIGHTS  # small, and its ImageNet weights are at hand
    reasons = rules.reasons(FEW, best)
    assert any("few images per class (12)" in r for r in reasons)
    many = rules.score(MANY, [best.with_(finetune="head"), best.with_(finetune="full")])
    assert many[1] > many[0]
