"""Ultralytics YOLO11: classification (yolo11n/s/m-cls) and detection (yolo11n/s).

Offline by design: models build from their YAML, ``YOLO_CONFIG_DIR`` points into
``$MLSEL_HOME/cache`` unless set, data paths are absolute, ``amp=False`` on CPU. The
dataset is laid out for Ultralytics with symlinks (classification: ``train|val/<class>/``;
detection: ``images|labels/train|val`` and a generated ``data.yaml``), so every reader
layout trains the same way. Classification is scored with mlsel's own macro F1 on the
validation images (Ultralytics reports only top-1/top-5). Detection is scored as every
detection backend is, with COCO mAP50-95 from :mod:`mlsel.trainers.detection.coco` on the
trained model's predictions for the validation images (confidence 0.001, at most 100
boxes an image); Ultralytics' own validation figures stay in the metrics under
``ultralytics/...`` and in the per-epoch curve.

mlsel's presets map onto Ultralytics' own augmentation: ``none`` turns flips, HSV,
RandAugment, erasing and scale jitter off; ``light`` keeps flips and mild HSV;
``strong`` is Ultralytics' default (RandAugment, erasing 0.4).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.catalogue import architectures
from mlsel.kernel.errors import StopRun, TrainingError, WeightsUnavailableError, invalid_parameter
from mlsel.kernel.home import Home
from mlsel.kernel.records import Config, EpochCallback, EpochRecord, RunResult
from mlsel.trainers.base import Backend

if TYPE_CHECKING:
    from mlsel.kernel.dataset import Dataset
    from mlsel.trainers.cache import TensorCache

__all__ = ["CLASSIFY_ARCHS", "DETECT_ARCHS", "UltralyticsBackend", "YoloPredictor"]

logger = logging.getLogger(__name__)

CLASSIFY_ARCHS: tuple[str, ...] = architectures(backend="ultralytics", task="classify")
DETECT_ARCHS: tuple[str, ...] = architectures(backend="ultralytics", task="detect")
_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}
# COCO-style scoring: keep nearly every box (the evaluator ranks them), 100 an image
_SCORE_CONF, _SCORE_MAX_DET = 0.001, 100
# Layers frozen per finetune mode (YOLO11 backbones are layers 0-9; cls head is 10).
_FREEZE = {"head": 10, "partial": 8, "full": None}
_AUGMENT = {
    "none": dict(
        fliplr=0.0,
        hsv_h=0.0,
        hsv_s=0.0,
        hsv_v=0.0,
        auto_augment=None,
        erasing=0.0,
        scale=0.0,
        mosaic=0.0,
        translate=0.0,
    ),
    "light": dict(
        fliplr=0.5,
        hsv_h=0.015,
        hsv_s=0.2,
        hsv_v=0.2,
        auto_augment=None,
        erasing=0.0,
        scale=0.1,
        degrees=15.0,
    ),
    "strong": {},
}


def _env(home: Home) -> None:
    os.environ.setdefault("YOLO_CONFIG_DIR", str(home.ultralytics))
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")  # mlsel shows its own progress


def _link(src: str, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(os.path.abspath(src), dst)
    except OSError:  # no symlinks (Windows without developer mode): copy
        shutil.copy2(src, dst)


def _upscaled(src: str, dst: Path, size: int) -> None:
    """Ultralytics rejects images under 10 px: write those as ``size`` px PNGs instead."""
    from PIL import Image

    from mlsel.kernel.images import decode

    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(decode(src, size)).save(dst)


def _layout_classify(dataset: Dataset, root: Path, size: int) -> Path:
    for i, item in enumerate(dataset.items):
        if item.split not in ("train", "val"):
            continue
        folder = root / item.split / item.label
        if 0 < min(item.width, item.height) < 10:
            _upscaled(item.path, folder / f"{i:06d}.png", max(size, 10))
        else:
            _link(item.path, folder / f"{i:06d}{Path(item.path).suffix}")
    for split in ("train", "val"):  # ImageFolder needs every class folder, even empty
        for name in dataset.classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
    return root


def _layout_detect(dataset: Dataset, root: Path) -> Path:
    for i, item in enumerate(dataset.items):
        if item.split not in ("train", "val"):
            continue
        stem = f"{i:06d}"
        _link(item.path, root / "images" / item.split / f"{stem}{Path(item.path).suffix}")
        label = root / "labels" / item.split / f"{stem}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(
            "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in item.boxes)
        )
    names = "".join(f"  {i}: {name!r}\n" for i, name in enumerate(dataset.classes))
    yaml = root / "data.yaml"
    yaml.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return yaml


class UltralyticsBackend(Backend):
    """YOLO11 classification and detection through the ``ultralytics`` package."""

    name = "ultralytics"

    def check(self, config: Config, task: str) -> None:
        archs = DETECT_ARCHS if task == "detect" else CLASSIFY_ARCHS
        if config.arch not in archs:
            raise invalid_parameter(
                "arch",
                "train",
                f"one of {list(archs)} for the ultralytics backend on a {task} dataset",
                config.arch,
            )

    def resolve_weights(self, config: Config, weights: str | None = None) -> str | None:
        """A local ``<arch>.pt`` (``--weights``, ``$MLSEL_HOME/weights``, Ultralytics'
        weights folder) or ``"download"``; offline and absent raises."""
        from mlsel.trainers.weights import is_offline

        if config.pretrained is None:
            return None
        explicit = weights or (config.pretrained if config.pretrained != "imagenet" else None)
        filename = f"{config.arch}.pt"
        home = Home.resolve()
        candidates = (
            [Path(explicit)] if explicit else [home.weights / filename, home.ultralytics / filename]
        )
        for path in candidates:
            if path.expanduser().is_file():
                return str(path.expanduser())
        if explicit or is_offline():
            raise WeightsUnavailableError(
                f"Pretrained weights for {config.arch} ({explicit or filename}) are not on this "
                f"machine{'' if explicit else ' and MLSEL_OFFLINE is set'}. Put {filename} in "
                f"{home.weights}, pass it with --weights FILE, or train with --no-pretrained."
            )
        return "download"

    def fit(
        self,
        dataset: Dataset,
        config: Config,
        device: str = "auto",
        on_epoch: EpochCallback | None = None,
        *,
        cache: TensorCache | None = None,
        weights: str | None = None,
        artifact_dir: str | None = None,
    ) -> RunResult:
        from mlsel.trainers.devices import (
            HostMemorySampler,
            describe_hardware,
            gpu_peak_mb,
            library_versions,
            reset_gpu_peak,
            resolve_device,
        )

        self.check(config, dataset.task)
        if dataset.task == "detect":
            from mlsel.trainers.detection.coco import require_evaluator

            require_evaluator()
        source = self.resolve_weights(config, weights)
        dev = resolve_device(device)
        _env(Home.resolve())
        started = time.perf_counter()
        out = Path(artifact_dir) if artifact_dir else Path(tempfile.mkdtemp(prefix="mlsel-yolo-"))
        data_root = Path(tempfile.mkdtemp(prefix="mlsel-yolo-data-"))
        state: dict[str, Any] = {"status": "completed", "curve": [], "error": None}
        try:
            data = (
                _layout_detect(dataset, data_root)
                if dataset.task == "detect"
                else _layout_classify(dataset, data_root, config.image_size)
            )
            with HostMemorySampler() as memory:
                reset_gpu_peak(dev)
                final = self._train(config, dev, data, out, source, on_epoch, state)
            if state["error"]:
                raise TrainingError(state["error"])
            if dataset.task == "detect":
                metrics = {
                    "ultralytics/" + k.replace("metrics/", "").replace("(B)", ""): float(v)
                    for k, v in final.results_dict.items()
                }
                metrics.update(self._detect_metrics(dataset, out, dev, config.image_size))
                score, confusion = metrics.get("mAP50-95"), None
            else:
                metrics, confusion = self._classify_metrics(dataset, out, dev)
                score = metrics["f1_macro"]
        finally:
            shutil.rmtree(data_root, ignore_errors=True)
        metrics["epochs_run"] = float(len(state["curve"]))
        if artifact_dir:
            self._write_files(out, dataset, config, metrics, confusion, state["curve"])
        curve: list[EpochRecord] = state["curve"]
        return RunResult(
            status=state["status"],
            score=score,
            metrics=metrics,
            confusion=None
            if confusion is None
            else tuple(tuple(int(v) for v in r) for r in confusion),
            curve=tuple(curve),
            wall_seconds=time.perf_counter() - started,
            seconds_per_epoch=sum(r.seconds or 0 for r in curve) / max(len(curve), 1),
            peak_gpu_mb=gpu_peak_mb(dev),
            peak_host_mb=memory.peak_mb,
            hardware={**describe_hardware(dev), "weights": source or "none"},
            versions=library_versions(),
            artifact_dir=artifact_dir,
        )

    def _train(
        self,
        config: Config,
        dev: Any,
        data: Path,
        out: Path,
        source: str | None,
        on_epoch: EpochCallback | None,
        state: dict[str, Any],
    ) -> Any:
        from ultralytics import YOLO

        if source is None:
            model = YOLO(f"{config.arch}.yaml")
        else:
            model = YOLO(f"{config.arch}.pt" if source == "download" else source)
        detect = not config.arch.endswith("-cls")
        last = {"t": time.perf_counter()}

        def epoch_end(trainer: Any) -> None:
            epoch = trainer.epoch + 1
            done = state["curve"][-1].epoch if state["curve"] else 0
            if epoch > config.epochs or epoch <= done or state["status"] != "completed":
                return  # Ultralytics calls this again after its final validation
            now = time.perf_counter()
            loss = trainer.tloss
            if isinstance(loss, dict):
                loss = sum(float(v) for v in loss.values())
            loss = None if loss is None else float(loss.sum() if hasattr(loss, "sum") else loss)
            m = trainer.metrics or {}
            if detect:
                score = m.get("metrics/mAP50-95(B)")
                val_loss = sum(float(v) for k, v in m.items() if k.startswith("val/")) or None
            else:
                score, val_loss = _macro_f1(trainer.validator), m.get("val/loss")
            record = EpochRecord(
                epoch=epoch,
                train_loss=loss,
                val_loss=None if val_loss is None else float(val_loss),
                score=None if score is None else float(score),
                seconds=now - last["t"],
            )
            last["t"] = now
            state["curve"].append(record)
            if loss is not None and not math.isfinite(loss):
                state["error"] = f"The training loss became {loss} at epoch {record.epoch}."
                trainer.stop = True
                return
            try:
                if on_epoch is not None:
                    on_epoch(record)
            except StopRun as stop:
                state["status"] = stop.status
                trainer.stop = True

        model.add_callback("on_fit_epoch_end", epoch_end)
        return model.train(
            data=str(data),
            epochs=config.epochs,
            imgsz=config.image_size,
            batch=config.batch_size,
            device="cpu" if dev.type == "cpu" else str(dev.index or 0),
            workers=0,
            optimizer=_OPTIMIZERS[config.optimizer],
            lr0=config.lr,
            weight_decay=config.weight_decay,
            cos_lr=config.schedule == "cosine",
            patience=config.patience or 10**6,
            seed=config.seed,
            deterministic=False,
            amp=dev.type == "cuda",
            plots=False,
            verbose=False,
            val=True,
            pretrained=source is not None,
            freeze=_FREEZE[config.finetune],
            warmup_epochs=0,
            project=str(out.parent),
            name=out.name,
            exist_ok=True,
            cache="ram",
            **_AUGMENT[config.augment],
        )

    def _classify_metrics(self, dataset: Dataset, out: Path, dev: Any) -> tuple[dict, Any]:
        import numpy as np

        from mlsel.trainers.metrics import classification_metrics

        predictor = YoloPredictor(out, "cpu" if dev.type == "cpu" else str(dev), dataset.classes)
        val = dataset.split("val")
        probs = predictor.predict_proba([item.path for item in val])
        y = np.array([dataset.class_index(item.label) for item in val])
        return classification_metrics(y, probs)

    def _detect_metrics(
        self, dataset: Dataset, out: Path, dev: Any, image_size: int
    ) -> dict[str, float]:
        """COCO metrics of the trained model's predictions on the validation images."""
        import numpy as np
        from ultralytics import YOLO

        from mlsel.trainers.detection.coco import coco_metrics, coco_run_metrics

        model = YOLO(str(out / "weights" / "best.pt"))
        val = dataset.split("val")
        truth: list[tuple[np.ndarray, np.ndarray]] = []
        predicted: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        sizes: list[tuple[int, int]] = []
        for lo in range(0, len(val), 32):
            batch = val[lo : lo + 32]
            results: Any = model.predict(
                [item.path for item in batch],
                imgsz=image_size,
                conf=_SCORE_CONF,
                max_det=_SCORE_MAX_DET,
                device="cpu" if dev.type == "cpu" else str(dev.index or 0),
                verbose=False,
            )
            for item, result in zip(batch, results, strict=True):
                # the labels are normalised to the image as Ultralytics decodes it
                height, width = (int(v) for v in result.orig_shape)
                boxes = np.array([b[1:] for b in item.boxes], dtype=float).reshape(-1, 4)
                scale = np.array([width, height, width, height], dtype=float)
                xyxy = np.hstack([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2])
                truth.append((xyxy * scale, np.array([b[0] for b in item.boxes], dtype=int)))
                found = result.boxes
                predicted.append(
                    (
                        found.xyxy.cpu().numpy(),
                        found.conf.cpu().numpy(),
                        found.cls.cpu().numpy().astype(int),
                    )
                )
                sizes.append((width, height))
        coco = coco_metrics(truth, predicted, dataset.classes, sizes)
        if not coco["n_boxes"]:
            logger.warning(
                "The validation split of %s holds no box; the run has no mAP.", dataset.name
            )
        return {**coco_run_metrics(coco), "n_val": float(len(val))}

    def _write_files(
        self,
        out: Path,
        dataset: Dataset,
        config: Config,
        metrics: dict,
        confusion: Any,
        curve: list[EpochRecord],
    ) -> None:
        from mlsel.trainers.artifacts import write_run_files

        write_run_files(
            out,
            config=config,
            classes=dataset.classes,
            preprocessing={"image_size": config.image_size, "resize": "ultralytics"},
            metrics=metrics,
            confusion=confusion,
            curve=curve,
            score_name="mAP50-95" if dataset.task == "detect" else "macro F1",
        )


def _macro_f1(validator: Any) -> float | None:
    """Macro F1 from an Ultralytics classification validator's last predictions."""
    import numpy as np
    import torch

    from mlsel.trainers.metrics import confusion_matrix

    if validator is None or not getattr(validator, "pred", None):
        return None
    pred = torch.cat(validator.pred)[:, 0].numpy()
    true = torch.cat(validator.targets).numpy()
    n = int(max(pred.max(), true.max()) + 1)
    n = max(n, len(getattr(validator, "names", {}) or {}))
    cm = confusion_matrix(true, pred, n).astype(float)
    tp, denom = np.diag(cm), cm.sum(0) + cm.sum(1)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1.mean())


class YoloPredictor:
    """A trained Ultralytics classifier: ``predict(images) -> class names``."""

    def __init__(
        self, folder: Path, device: str = "cpu", classes: tuple[str, ...] | None = None
    ) -> None:
        import json

        from ultralytics import YOLO

        self.folder = folder
        self.model_ = YOLO(str(folder / "weights" / "best.pt"))
        self.device = device
        names = self.model_.names
        self.classes_ = (
            tuple(classes) if classes else tuple(json.loads((folder / "classes.json").read_text()))
        )
        # Ultralytics orders classes by folder name, as mlsel does; map by name to be safe.
        self._order = [list(names.values()).index(c) for c in self.classes_]

    def predict_proba(self, images: list[Any], batch_size: int = 64) -> Any:
        import numpy as np

        out: list[Any] = []
        for lo in range(0, len(images), batch_size):
            results: Any = self.model_.predict(
                images[lo : lo + batch_size], device=self.device, verbose=False
            )
            out.extend(r.probs.data.cpu().numpy()[self._order] for r in results)
        return np.stack(out) if out else np.zeros((0, len(self.classes_)))

    def predict(self, images: list[Any]) -> list[str]:
        """The most probable class name of each image."""
        return [self.classes_[i] for i in self.predict_proba(images).argmax(axis=1)]
