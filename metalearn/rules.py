"""Declarative production rules: the recommender's prior before there is experience.

A :class:`Rule` is data: a condition on the dataset's meta-features (``when``), a
condition on the config (``applies``), an ``effect`` on the score, its ``source`` and a
``reason`` template a user can read. The few-shot fine-tuning study's findings come
first; the rule-based model recommender is the prior this follows. :class:`RulesRanker` sums the
effects of the rules that fire and keeps the reasons. It ranks when experience is thin
and stays as the baseline a learned ranker must beat.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mlsel.kernel.records import Config, DatasetProfile
from mlsel.metalearn._profile import profile_value
from mlsel.metalearn.cards import architecture_card

__all__ = ["DEFAULT_RULES", "Rule", "RulesRanker", "pretrained_image_size"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
FEW_SHOT_STUDY = "few-shot fine-tuning study (EfficientNet B0/B7, YOLO11 on 15-50 images a class)"
RULE_RECOMMENDER = "rule-based model recommender (production rules on dataset features)"
KORNBLITH = "Kornblith et al. 2019, 'Do Better ImageNet Models Transfer Better?'"


def _params(config: Config) -> float:
    card = architecture_card(config.arch)
    return card.params_m if card and card.params_m else math.nan


# Config predicates, by name, so that a rule stays plain data.
CONFIG_TESTS: dict[str, Callable[[Config], bool]] = {
    "pretrained": lambda c: c.pretrained is not None,
    "scratch": lambda c: c.pretrained is None,
    "small_model": lambda c: c.pretrained is not None and _params(c) <= 12,
    "large_model": lambda c: _params(c) >= 40,
    "frozen_backbone": lambda c: c.pretrained is not None and c.finetune in ("linear", "head"),
    "linear_probe": lambda c: c.pretrained is not None and c.finetune == "linear",
    "pretrained_160_224": lambda c: c.pretrained is not None and 160 <= c.image_size <= 224,
    "pretrained_32_64": lambda c: c.pretrained is not None and c.image_size <= 64,
    "tuned_backbone": lambda c: c.pretrained is not None and c.finetune in ("partial", "full"),
    "full_finetune": lambda c: c.finetune == "full",
    "strong_augment": lambda c: c.augment == "strong",
    "no_augment": lambda c: c.augment == "none",
    "duplicates_to_50": lambda c: c.min_per_class >= 50,
    "yolo_frozen": lambda c: (
        c.backend == "ultralytics" and c.pretrained is not None and c.finetune == "head"
    ),
    "yolo_bigger_than_n": lambda c: (
        c.backend == "ultralytics" and c.arch.startswith(("yolo11s", "yolo11m"))
    ),
    "small_cnn": lambda c: c.arch == "small_cnn",
}


@dataclass(frozen=True)
class Rule:
    """IF every ``when`` condition holds and the config passes ``applies`` THEN add ``effect``.

    Attributes:
        name: short identifier.
        when: ``(meaning, op, threshold)`` conditions on meta-features (see
            ``_profile.ALIASES``); a rule whose feature is unknown does not fire.
        applies: name of a config test in :data:`CONFIG_TESTS`.
        effect: added to the config's score when the rule fires.
        reason: text shown to the user; ``{value}`` is the first ``when`` feature's value.
        source: where the rule comes from.
    """

    name: str
    when: tuple[tuple[str, str, float], ...]
    applies: str
    effect: float
    reason: str
    source: str

    def fires(self, features: Mapping[str, float], config: Config) -> str | None:
        """The reason text when the rule fires for this dataset and config, else ``None``."""
        first: float | None = None
        for meaning, op, threshold in self.when:
            value = profile_value(features, meaning)
            if value is None or not _OPS[op](value, threshold):
                return None
            first = value if first is None else first
        if not CONFIG_TESTS[self.applies](config):
            return None
        return self.reason.format(value=f"{first:.3g}" if first is not None else "")


# Images that look natural (colour photos, drawings, icons) reach a pretrained backbone
# at 160-224 px; tiny grey images (digits, Fashion-MNIST) at 32-64 px.
TINY_GREY_SIDE = 48.0
NATURAL_SIZE, TINY_SIZE = 224, 64


def pretrained_image_size(profile: DatasetProfile | Mapping[str, float] | None) -> tuple[int, str]:
    """The resolution a pretrained backbone is given, and why."""
    features = profile.features if isinstance(profile, DatasetProfile) else (profile or {})
    side = profile_value(features, "image_side")
    grey = profile_value(features, "grayscale")
    if side is not None and side <= TINY_GREY_SIDE and (grey is None or grey >= 0.5):
        return TINY_SIZE, f"tiny grey images ({side:.0f} px): {TINY_SIZE} px is enough"
    what = "colour" if grey is not None and grey < 0.5 else "natural-looking"
    shown = f" ({side:.0f} px)" if side is not None else ""
    return NATURAL_SIZE, f"{what} images{shown}: pretrained backbones see them at {NATURAL_SIZE} px"


FEW = ("min_per_class", "<", 50.0)
UNLIKE = ("imagenet_confidence", "<", 0.3)
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "few-shot-pretrained",
        (FEW,),
        "pretrained",
        2.0,
        "few images per class ({value}): start from ImageNet weights",
        FEW_SHOT_STUDY,
    ),
    Rule(
        "few-shot-scratch",
        (FEW,),
        "scratch",
        -1.0,
        "few images per class ({value}): training from scratch overfits",
        FEW_SHOT_STUDY,
    ),
    Rule(
        "few-shot-b0-class",
        (FEW,),
        "small_model",
        1.0,
        "few images per class ({value}): a small EfficientNet-B0-class model is enough",
        FEW_SHOT_STUDY,
    ),
    Rule(
        "few-shot-large",
        (FEW,),
        "large_model",
        -1.0,
        "few images per class ({value}): a large model (B7-class) costs 10x for ~5% at best",
        FEW_SHOT_STUDY,
    ),
    Rule(
        "few-shot-frozen",
        (FEW,),
        "frozen_backbone",
        1.0,
        "few images per class ({value}): freeze the backbone, train the head",
        FEW_SHOT_STUDY,
    ),
    Rule(
        "few-shot-augment",
        (FEW,),
        "strong_augment",
        0.5,
        "few images per class ({value}): strong augmentation",
        FEW_SHOT_STUDY,
    ),
    Rule(
        "few-shot-duplicate",
        (FEW,),
        "duplicates_to_50",
        0.5,
        "few images per class ({value}): duplicate up to 50 a class",
        FEW_SHOT_STUDY,
    ),
    Rule(
        "few-shot-linear-probe",
        (FEW,),
        "linear_probe",
        1.0,
        "few images per class ({value}): a linear probe on frozen ImageNet embeddings, "
        "computed once and cached",
        FEW_SHOT_STUDY,
    ),
    Rule(
        "natural-images-resolution",
        (("image_side", ">", TINY_GREY_SIDE),),
        "pretrained_160_224",
        0.5,
        "natural-looking images ({value} px): pretrained backbones see them at 160-224 px",
        KORNBLITH,
    ),
    Rule(
        "tiny-grey-resolution",
        (("image_side", "<=", TINY_GREY_SIDE), ("grayscale", ">=", 0.5)),
        "pretrained_32_64",
        0.5,
        "tiny grey images ({value} px): 32-64 px is enough",
        RULE_RECOMMENDER,
    ),
    Rule(
        "yolo-no-freeze",
        (),
        "yolo_frozen",
        -1.5,
        "freezing YOLO11 layers lost >10% in tests",
        FEW_SHOT_STUDY,
    ),
    Rule(
        "yolo-n-over-s",
        (FEW,),
        "yolo_bigger_than_n",
        -0.5,
        "few images per class ({value}): YOLO11n beat YOLO11s",
        FEW_SHOT_STUDY,
    ),
    Rule(
        "unlike-imagenet",
        (UNLIKE,),
        "tuned_backbone",
        1.0,
        "images unlike ImageNet (confidence {value}): fine-tune the backbone too",
        RULE_RECOMMENDER,
    ),
    Rule(
        "unlike-imagenet-frozen",
        (UNLIKE,),
        "frozen_backbone",
        -0.5,
        "images unlike ImageNet (confidence {value}): a frozen backbone transfers poorly",
        RULE_RECOMMENDER,
    ),
    Rule(
        "many-images-full",
        (("median_per_class", ">=", 500.0),),
        "full_finetune",
        1.0,
        "many images per class ({value}): fine-tune the whole network",
        RULE_RECOMMENDER,
    ),
    Rule(
        "many-images-large",
        (("median_per_class", ">=", 500.0),),
        "large_model",
        0.5,
        "many images per class ({value}): a larger model can pay off",
        RULE_RECOMMENDER,
    ),
    Rule(
        "tiny-images",
        (("image_side", "<=", 32.0),),
        "small_cnn",
        1.0,
        "tiny images ({value} px): a small CNN from scratch is competitive",
        RULE_RECOMMENDER,
    ),
)


class RulesRanker:
    """Scores configs by the production rules that fire; ties go to better ImageNet models.

    Args:
        rules: the rules to apply (default :data:`DEFAULT_RULES`).
    """

    def __init__(self, rules: Sequence[Rule] = DEFAULT_RULES) -> None:
        self.rules = rules

    def explain(
        self, profile: DatasetProfile | Mapping[str, float], config: Config
    ) -> list[tuple[float, str]]:
        """``(effect, reason)`` of every rule that fires, largest effect first."""
        features = profile.features if isinstance(profile, DatasetProfile) else profile
        fired = []
        for rule in self.rules:
            reason = rule.fires(features, config)
            if reason is not None:
                fired.append((rule.effect, reason))
        return sorted(fired, key=lambda item: -abs(item[0]))

    def score(
        self, profile: DatasetProfile | Mapping[str, float], configs: Sequence[Config]
    ) -> np.ndarray:
        """One score per config (higher is better)."""
        out = np.empty(len(configs))
        for i, config in enumerate(configs):
            total = sum(effect for effect, _ in self.explain(profile, config))
            card = architecture_card(config.arch)
            # Better ImageNet models transfer better (KORNBLITH): a tie-breaker only.
            top1 = card.imagenet_top1 if card and card.imagenet_top1 else 60.0
            prior = top1 / 1000.0 if config.pretrained is not None else 0.05
            out[i] = total + prior
        return out

    def reasons(
        self, profile: DatasetProfile | Mapping[str, float], config: Config, top: int = 3
    ) -> tuple[str, ...]:
        """Reasons of the rules that raised the config's score (largest first)."""
        fired = [reason for effect, reason in self.explain(profile, config) if effect > 0]
        return tuple(fired[:top])
