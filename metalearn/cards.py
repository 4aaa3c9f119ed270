"""Architecture cards: what mlsel knows about a model before it has any runs of it.

The cards live in ``mlsel.data_cards`` under ``architectures/<arch>.json`` (parameters,
FLOPs, ImageNet top-1, default input size, source). The ranker turns them into features
so that it can generalise to architectures with few logged runs.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

__all__ = ["ArchitectureCard", "architecture_card", "architecture_cards", "card_features"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchitectureCard:
    """One architecture's published facts (``None`` where unknown)."""

    arch: str
    backend: str
    family: str
    kind: str
    task: str
    params_m: float | None
    gflops: float | None
    imagenet_top1: float | None
    input_size: int | None
    pretrain_data: str | None
    source: str


@lru_cache(maxsize=1)
def architecture_cards() -> dict[str, ArchitectureCard]:
    """Every bundled card, keyed by architecture name."""
    folder = files("mlsel.data_cards").joinpath("architectures")
    cards: dict[str, ArchitectureCard] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".json"):
            continue
        data = json.loads(entry.read_text(encoding="utf-8"))
        cards[data["arch"]] = ArchitectureCard(**data)
    return cards


def architecture_card(arch: str) -> ArchitectureCard | None:
    """The card of ``arch`` or ``None`` when mlsel has none."""
    return architecture_cards().get(arch)


_KINDS = {"cnn": 0.0, "hybrid": 0.5, "transformer": 1.0}
_PRETRAIN = {
    None: 0.0,
    "imagenet-1k": 1.0,
    "coco": 1.0,
    "imagenet-22k": 2.0,
    "jft-noisy-student": 3.0,
}


def card_features(arch: str) -> dict[str, float]:
    """Numeric features of an architecture's card (NaN when unknown)."""
    card = architecture_card(arch)
    nan = float("nan")
    if card is None:
        return {
            "arch_log_params": nan,
            "arch_log_gflops": nan,
            "arch_imagenet_top1": nan,
            "arch_input_size": nan,
            "arch_kind": nan,
            "arch_pretrain_scale": nan,
        }
    return {
        "arch_log_params": math.log10(card.params_m) if card.params_m else nan,
        "arch_log_gflops": math.log10(card.gflops) if card.gflops else nan,
        "arch_imagenet_top1": card.imagenet_top1 if card.imagenet_top1 is not None else nan,
        "arch_input_size": float(card.input_size) if card.input_size else nan,
        "arch_kind": _KINDS.get(card.kind, nan),
        "arch_pretrain_scale": _PRETRAIN.get(card.pretrain_data, 1.0),
    }
