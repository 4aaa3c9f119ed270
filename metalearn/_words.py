"""Feature contributions in a user's words: "few images per class (12)", "learning rate 1e-3"."""

from __future__ import annotations

import math
from typing import Any

from mlsel.metalearn._profile import describe_feature

__all__ = ["feature_words"]

_CONFIG_WORDS: dict[str, str] = {
    "cfg_lr": "learning rate",
    "cfg_weight_decay": "weight decay",
    "cfg_batch_size": "batch size",
    "cfg_epochs": "epochs",
    "cfg_image_size": "image size",
    "cfg_label_smoothing": "label smoothing",
    "cfg_min_per_class": "duplicate small classes up to",
    "cfg_patience": "early-stopping patience",
    "cfg_backend": "backend",
    "cfg_arch": "architecture",
    "cfg_finetune": "fine-tuning",
    "cfg_augment": "augmentation",
    "cfg_optimizer": "optimizer",
    "cfg_schedule": "schedule",
}
_CARD_WORDS: dict[str, tuple[str, str]] = {
    "arch_log_params": ("model size", "{:.1f}M parameters"),
    "arch_log_gflops": ("compute", "{:.1f} GFLOPs"),
    "arch_imagenet_top1": ("ImageNet top-1 of the model", "{:.1f}%"),
    "arch_input_size": ("native input size", "{:.0f} px"),
    "arch_kind": ("model kind", "{}"),
    "arch_pretrain_scale": ("pretraining data", "{}"),
}
_KIND = {0.0: "CNN", 0.5: "hybrid CNN-transformer", 1.0: "transformer"}
_PRETRAIN = {0.0: "none", 1.0: "ImageNet-1k", 2.0: "ImageNet-22k", 3.0: "JFT noisy student"}
_LOG10 = {"cfg_lr", "cfg_weight_decay", "arch_log_params", "arch_log_gflops"}


def feature_words(name: str, value: float, encoder: Any) -> str:
    """Words for feature ``name`` at encoded ``value`` (decoding logs and categories)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{_label(name)} unknown"
    if name in _LOG10:
        value = 10.0**value
    if name == "cfg_batch_size":
        value = 2.0**value
    vocab = _vocab(name, encoder)
    if vocab is not None:
        text = vocab[int(value)] if 0 <= int(value) < len(vocab) else "?"
        return f"{_label(name)}: {text}"
    if name in _CARD_WORDS:
        label, fmt = _CARD_WORDS[name]
        if name == "arch_kind":
            return f"{label}: {_KIND.get(value, value)}"
        if name == "arch_pretrain_scale":
            return f"{label}: {_PRETRAIN.get(value, value)}"
        return f"{label} ({fmt.format(value)})"
    if name == "cfg_pretrained":
        return "ImageNet-pretrained weights" if value else "trained from scratch"
    return f"{_label(name)} ({value:.3g})"


def _label(name: str) -> str:
    if name.startswith("feat_"):
        return describe_feature(name)
    if name.startswith("x_"):
        return name[2:].replace("_", " ")
    if name in _CARD_WORDS:
        return _CARD_WORDS[name][0]
    return _CONFIG_WORDS.get(name, name)


def _vocab(name: str, encoder: Any) -> list[str] | None:
    if name.startswith("cfg_") and name[4:] in getattr(encoder, "vocab_", {}):
        return encoder.vocab_[name[4:]]
    if name.startswith("x_") and name[2:] in getattr(encoder, "extra_vocab_", {}):
        return encoder.extra_vocab_[name[2:]]
    return None
