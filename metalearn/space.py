"""The candidate space, declared in one place: architectures, backends and ranges.

Everything that proposes a configuration goes through :class:`CandidateSpace`: the
rules and the ranker score :meth:`CandidateSpace.candidates`, Optuna samples
:meth:`CandidateSpace.sample_config`. Optuna parameter names are exactly those of
:meth:`Config.to_params` (``model`` = ``"backend/arch"``, ``pretrained`` as
``"imagenet"``/``"none"``), so ``study.enqueue_trial(config.to_params())`` reproduces a
config. Categorical choices are static per task, as Optuna requires.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlsel.kernel import catalogue
from mlsel.kernel.errors import ConfigError, invalid_parameter
from mlsel.kernel.records import Config, DatasetProfile
from mlsel.metalearn._profile import profile_value

__all__ = ["ARCHITECTURES", "CandidateSpace", "available"]

logger = logging.getLogger(__name__)

# arch -> (backend, task), read from the catalogue. timm models are optional and enter
# through seen configs.
ARCHITECTURES: dict[str, tuple[str, str]] = {
    name: (entry.backend, entry.task) for name, entry in catalogue.ARCHITECTURES.items()
}


def available(config: Config, home: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``config`` can train here as declared: its pretrained weights are at hand
    (see :func:`mlsel.kernel.catalogue.weights_available`)."""
    return catalogue.weights_available(config, home)


def _scratch_ok(arch: str) -> bool:
    entry = catalogue.architecture(arch)
    return entry is not None and entry.scratch_ok


def _pretrainable(arch: str) -> bool:
    entry = catalogue.architecture(arch)
    return entry is None or entry.pretrainable


@dataclass(frozen=True)
class CandidateSpace:
    """Architectures and hyperparameter ranges the trainers accept.

    Attributes:
        lr, weight_decay, label_smoothing: float ranges ``(low, high)``.
        epochs, patience, seed: int ranges.
        batch_sizes, image_sizes, min_per_class: categorical choices.
    """

    lr: tuple[float, float] = (1e-5, 1e-1)
    weight_decay: tuple[float, float] = (1e-6, 1e-1)
    label_smoothing: tuple[float, float] = (0.0, 0.2)
    epochs: tuple[int, int] = (1, 100)
    patience: tuple[int, int] = (0, 20)
    seed: tuple[int, int] = (0, 9999)
    batch_sizes: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
    image_sizes: tuple[int, ...] = (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 640)
    min_per_class: tuple[int, ...] = (0, 50)
    finetune: tuple[str, ...] = catalogue.FINETUNE_MODES
    augment: tuple[str, ...] = catalogue.AUGMENT_PRESETS
    optimizer: tuple[str, ...] = catalogue.OPTIMIZERS
    schedule: tuple[str, ...] = catalogue.SCHEDULES
    architectures: Mapping[str, tuple[str, str]] = field(default_factory=lambda: ARCHITECTURES)

    def models(self, task: str) -> list[str]:
        """``backend/arch`` names of every architecture for ``task``."""
        if task not in catalogue.TASKS:
            raise invalid_parameter(
                "task", "the candidate space", f"one of {', '.join(catalogue.TASKS)}", task
            )
        names = [f"{b}/{a}" for a, (b, t) in self.architectures.items() if t == task]
        if not names:
            known = ", ".join(catalogue.architectures(task=task))
            raise ConfigError(
                f"None of the architectures searched ({', '.join(self.architectures)}) is for "
                f"{task}. Choose {task} architectures with --model: {known}."
            )
        return names

    def sample_config(
        self, trial: Any, task: str, *, fixed: Mapping[str, Any] | None = None
    ) -> Config:
        """Sample one config with an Optuna ``trial`` (define-by-run).

        Args:
            trial: an ``optuna.Trial``.
            task: ``classify`` or ``detect``.
            fixed: params (names of :meth:`Config.to_params`) held constant; they are
                not suggested.
        """
        fixed = dict(fixed or {})

        def pick(name: str, suggest: Any) -> Any:
            return fixed[name] if name in fixed else suggest()

        p: dict[str, Any] = {}
        p["model"] = pick("model", lambda: trial.suggest_categorical("model", self.models(task)))
        p["pretrained"] = pick(
            "pretrained", lambda: trial.suggest_categorical("pretrained", ["imagenet", "none"])
        )
        p["finetune"] = pick(
            "finetune", lambda: trial.suggest_categorical("finetune", list(self.finetune))
        )
        p["lr"] = pick("lr", lambda: trial.suggest_float("lr", *self.lr, log=True))
        p["weight_decay"] = pick(
            "weight_decay",
            lambda: trial.suggest_float("weight_decay", *self.weight_decay, log=True),
        )
        p["batch_size"] = pick(
            "batch_size", lambda: trial.suggest_categorical("batch_size", list(self.batch_sizes))
        )
        p["epochs"] = pick("epochs", lambda: trial.suggest_int("epochs", *self.epochs))
        p["image_size"] = pick(
            "image_size", lambda: trial.suggest_categorical("image_size", list(self.image_sizes))
        )
        p["augment"] = pick(
            "augment", lambda: trial.suggest_categorical("augment", list(self.augment))
        )
        p["optimizer"] = pick(
            "optimizer", lambda: trial.suggest_categorical("optimizer", list(self.optimizer))
        )
        p["schedule"] = pick(
            "schedule", lambda: trial.suggest_categorical("schedule", list(self.schedule))
        )
        p["label_smoothing"] = pick(
            "label_smoothing",
            lambda: trial.suggest_float("label_smoothing", *self.label_smoothing),
        )
        p["min_per_class"] = pick(
            "min_per_class",
            lambda: trial.suggest_categorical("min_per_class", list(self.min_per_class)),
        )
        p["patience"] = pick("patience", lambda: trial.suggest_int("patience", *self.patience))
        p["seed"] = pick("seed", lambda: trial.suggest_int("seed", *self.seed))
        extra = {k: v for k, v in fixed.items() if k.startswith("extra.")}
        return self.coerce(Config.from_params({**p, **extra}))

    def coerce(self, config: Config) -> Config:
        """Make a sampled config trainable: no ImageNet weights where none exist or are at
        hand here (then it trains fully, from scratch, and says so by ``pretrained=None``);
        a detector on a shipped backbone at a CPU-sized input (320-512 px), its backbone
        frozen rather than probed."""
        if _is_torchvision_detector(config.arch):
            size = min(DETECTOR_SIZES, key=lambda s: abs(s - config.image_size))
            finetune = "head" if config.finetune == "linear" else config.finetune
            config = config.with_(image_size=size, finetune=finetune)
        if config.pretrained is not None and (
            not _pretrainable(config.arch) or not available(config)
        ):
            return config.with_(pretrained=None, finetune="full")
        if config.pretrained is None and config.finetune != "full":
            return config.with_(finetune="full")
        return config

    def candidates(
        self,
        task: str,
        profile: DatasetProfile | None = None,
        *,
        seen: Iterable[Config] = (),
    ) -> list[Config]:
        """A finite grid for ``task`` shaped by ``profile``, plus the configs in ``seen``.

        Pretrained variants appear only where the weights are at hand (:func:`available`):
        linear probes (each backbone, and all shipped ones concatenated), heads on
        embeddings, and partial and full fine-tuning, at the resolution the rules choose
        (:func:`~mlsel.metalearn.rules.pretrained_image_size`). ``seen`` (configs logged in
        the store) are kept as they are if their backend is one this space knows or they
        were imported.
        """
        from mlsel.metalearn.rules import pretrained_image_size

        models = self.models(task)
        per_class = profile_value(profile, "min_per_class")
        n_images = profile_value(profile, "n_images")
        small = per_class is not None and per_class < 50
        epochs = 30 if (n_images is not None and n_images < 2000) else 15
        min_pc = 50 if small else 0
        size, _ = pretrained_image_size(profile)
        out: list[Config] = []
        shipped: list[str] = []
        for model in models:
            backend, _, arch = model.partition("/")
            base = Config(
                backend=backend,
                arch=arch,
                epochs=epochs,
                image_size=_detect_size(arch) if task == "detect" else _image_size(arch),
                batch_size=16,
                min_per_class=min_pc,
                optimizer="adam",
            )
            pretrained = base.with_(pretrained="imagenet")
            if _pretrainable(arch) and available(pretrained):
                if task == "classify" and backend == "torchvision":
                    pretrained = pretrained.with_(image_size=min(size, base.image_size))
                    out.extend(_probes(pretrained))
                    if arch in catalogue.SHIPPED_WEIGHTS:
                        shipped.append(arch)
                for finetune, lr in (("head", 1e-3), ("partial", 3e-4), ("full", 1e-4)):
                    for augment in ("light", "strong"):
                        out.append(pretrained.with_(finetune=finetune, lr=lr, augment=augment))
            if _scratch_ok(arch):
                for augment in ("light", "strong"):
                    out.append(
                        base.with_(
                            pretrained=None,
                            finetune="full",
                            lr=1e-3,
                            augment=augment,
                            schedule="cosine",
                        )
                    )
        if len(shipped) > 1:
            joined = Config(backend="torchvision", arch=catalogue.concat(shipped), image_size=size)
            out.extend(_probes(joined))
        keys = {c.key() for c in out}
        for config in seen:
            if config.key() not in keys:
                keys.add(config.key())
                out.append(config)
        return out


# Input sizes of torchvision detectors on a CPU (the images are resized to a square).
DETECTOR_SIZES: tuple[int, ...] = (320, 384, 416, 512)


def _is_torchvision_detector(arch: str) -> bool:
    found = catalogue.architecture(arch)
    return found is not None and found.task == "detect" and found.backend == "torchvision"


def _detect_size(arch: str) -> int:
    """A detector's grid size: 320 px for the torchvision ones (CPU), 640 for YOLO."""
    return DETECTOR_SIZES[0] if _is_torchvision_detector(arch) else 640


def _probes(config: Config) -> list[Config]:
    """Linear probes of one (or a concatenation of) frozen backbone(s): plain and with
    augmented views, at three strengths of regularisation (``C = 1 / (wd * n)``)."""
    return [
        config.with_(
            finetune="linear",
            epochs=1,
            weight_decay=wd,
            augment=augment,
            min_per_class=0,
            lr=1e-3,
        )
        for augment in ("none", "light")
        for wd in (1e-3, 1e-2, 1e-1)
    ]


def _image_size(arch: str) -> int:
    from mlsel.metalearn.cards import architecture_card

    card = architecture_card(arch)
    size = card.input_size if card and card.input_size else 224
    return min(size, 224)  # small_cnn's card says 64
