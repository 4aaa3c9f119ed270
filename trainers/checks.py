"""Validate a ``Config`` once, at the public boundary, with sklearn-style messages."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from mlsel.kernel.catalogue import (
    AUGMENT_PRESETS,
    FINETUNE_MODES,
    OPTIMIZERS,
    SCHEDULES,
    TRAINABLE_BACKENDS,
)
from mlsel.kernel.errors import ConfigError, invalid_parameter
from mlsel.kernel.records import Config

__all__ = ["check_config"]


def _fail(name: str, expected: str, value: Any) -> ConfigError:
    return invalid_parameter(name, "train", expected, value)


def _int(name: str, value: Any, low: int, high: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or not low <= int(value) <= high:
        bound = "inf" if math.isinf(high) else str(int(high))
        raise _fail(name, f"an int in [{low}, {bound}]", value)


def _real(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if open_low else value >= low) and (
            value < high if open_high else value <= high
        )
    if not ok:
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        raise _fail(name, f"a float in {left}{low}, {high}{right}", value)


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise _fail(name, f"a str among {list(options)}", value)


def check_config(config: Config) -> None:
    """Raise :class:`ConfigError` naming the first invalid field of ``config``."""
    if not isinstance(config, Config):
        raise ConfigError(
            f"train takes a mlsel Config as 'config'. Got {type(config).__name__} instead."
        )
    _choice("backend", config.backend, TRAINABLE_BACKENDS)
    if not isinstance(config.arch, str) or not config.arch:
        raise _fail("arch", "a non-empty str", config.arch)
    if config.pretrained is not None and (
        not isinstance(config.pretrained, str) or not config.pretrained
    ):
        raise _fail("pretrained", "'imagenet', a weights file path or None", config.pretrained)
    _choice("finetune", config.finetune, FINETUNE_MODES)
    _real("lr", config.lr, 0.0, 10.0, open_low=True)
    _real("weight_decay", config.weight_decay, 0.0, 1.0)
    _int("batch_size", config.batch_size, 1, 65536)
    _int("epochs", config.epochs, 1, 100000)
    _int("image_size", config.image_size, 8, 4096)
    _choice("augment", config.augment, AUGMENT_PRESETS)
    _choice("optimizer", config.optimizer, OPTIMIZERS)
    _choice("schedule", config.schedule, SCHEDULES)
    _real("label_smoothing", config.label_smoothing, 0.0, 1.0, open_high=True)
    _int("min_per_class", config.min_per_class, 0, 1_000_000)
    _int("patience", config.patience, 0, 100000)
    _int("seed", config.seed, 0, 2**32 - 1)
    if config.pretrained is None and config.finetune != "full":
        raise ConfigError(
            f"A model trained from scratch (pretrained=None) must use finetune='full'; "
            f"freezing a random backbone learns nothing. Got finetune={config.finetune!r} "
            "instead: pass finetune='full' or pretrained='imagenet'."
        )
