"""Detection benchmark: the pretrained-backbone detector against YOLO11n from scratch, on
the real detection tasks, each arm given the same wall budget on this machine.

Per task of ``detect_tasks.py`` (built once under ``--work``), one seed, in one process:

* ``pretrained`` (arm A): Faster R-CNN on the shipped ImageNet MobileNetV2 backbone,
  frozen (``finetune="head"``), 320 px, AdamW 1e-3 with a cosine schedule: the issue's
  single default config;
* ``scratch`` (arm B): Ultralytics YOLO11n from scratch, 320 px, with what Ultralytics
  does by default here (its ``optimizer=auto`` picks AdamW at ``0.002 * 5 / (4 + classes)``
  for runs this short; batch 16, weight decay 5e-4, its own augmentation), except that
  mlsel turns warm-up off;
* ``fcos`` (arm C, only with ``--arms``): FCOS on the shipped EfficientNet-Lite0, frozen;
* ``search`` (with ``--arms``): ``mlsel run --budget <arm seconds> --gpus cpu`` in a fresh
  home whose bundled runs leave this task out (:mod:`benchmarks.detect_run`).

Every arm trains through ``mlsel.trainers.train`` in a throwaway home of its own with
``epochs`` large; an epoch callback stops it (``StopRun("timeout")``) before an epoch
that would end past ``--arm-seconds`` (the best epoch on val is kept; see :class:`Deadline`). Each
arm's saved model then predicts the TEST images, scored by the evaluator every backend shares
(``mlsel.trainers.detection.coco.coco_metrics``: mAP50-95, mAP50). The load average is
recorded before and after every arm: on a busy machine the budget buys less.

Writes ``detect.json`` (merged with the results already there, by task and arm) and
``detect.md`` to ``--out``.

    MLSEL_OFFLINE=1 .venv/bin/python benchmarks/detect.py --tasks large-two
    .venv/bin/python benchmarks/detect.py --arms pretrained scratch fcos --arm-seconds 300
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

from benchmarks.detect_report import ARMS, figure, markdown, targets  # noqa: E402
from benchmarks.detect_tasks import (  # noqa: E402
    BUILD_VERSION,
    SPLIT_IMAGES,
    TASKS,
    SourceMissing,
    build_task,
    check_sources,
)
from mlsel.kernel.errors import MlselError, StopRun  # noqa: E402
from mlsel.kernel.records import Config, EpochRecord  # noqa: E402

if TYPE_CHECKING:
    import numpy as np

    from mlsel.kernel.dataset import Dataset, DatasetItem

OUT = Path(__file__).resolve().parent / "out"
WORK = OUT / "detect"
SIDE = 320
EPOCHS = 100  # more than any budget here allows: the deadline ends every arm
#: COCO-style scoring of the test split: nearly every box, at most 100 an image (the
#: values the Ultralytics backend scores val with).
SCORE_CONF, SCORE_MAX_DET = 0.001, 100

DEFAULT_ARMS = ("pretrained", "scratch")


def arm_config(arm: str, num_classes: int, epochs: int = EPOCHS, seed: int = 0) -> Config:
    """The config arm ``arm`` trains (see the module docstring)."""
    if arm == "scratch":
        return Config(
            backend="ultralytics",
            arch="yolo11n",
            pretrained=None,
            finetune="full",
            lr=round(0.002 * 5 / (4 + num_classes), 6),  # Ultralytics' optimizer=auto
            weight_decay=5e-4,
            batch_size=16,
            epochs=epochs,
            image_size=SIDE,
            augment="strong",  # Ultralytics' own augmentation, mosaic included
            optimizer="adamw",
            schedule="none",  # Ultralytics' linear decay to lrf
            seed=seed,
        )
    arch = {"pretrained": "fasterrcnn_mobilenet_v2", "fcos": "fcos_efficientnet_lite0"}[arm]
    return Config(
        backend="torchvision",
        arch=arch,
        pretrained="imagenet",
        finetune="head",
        lr=1e-3,
        weight_decay=1e-4,
        batch_size=8,
        epochs=epochs,
        image_size=SIDE,
        augment="light",
        optimizer="adamw",
        schedule="cosine",
        seed=seed,
    )


class Deadline:
    """An ``on_epoch`` callback that caps a run at ``seconds`` from its creation: after an
    epoch, ``StopRun("timeout")`` unless one more epoch as long as the last still ends
    within the budget.

    The cap leaves unused up to one epoch of the budget, the most for the arm with the
    longest epochs (Faster R-CNN's take over 100 s on a busy 2-core machine, YOLO11n's
    under 20 s): a handicap of the pretrained arm, never of the arm it must beat."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()
        self.stopped_at: float | None = None

    def __call__(self, record: EpochRecord) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed + (record.seconds or 0.0) > self.seconds:
            self.stopped_at = elapsed
            raise StopRun("timeout")


# --- one task ------------------------------------------------------------------------


def task_folder(name: str, work: Path, seed: int) -> Path:
    """Task ``name`` under ``work/tasks``, built unless a full build of ``seed`` is there."""
    folder = work / "tasks" / name
    derivation = folder / "derivation.json"
    if derivation.is_file():
        made = json.loads(derivation.read_text())
        sizes = {split: len(images) for split, images in made["images"].items()}
        if (made["seed"], made["build_version"], sizes) == (seed, BUILD_VERSION, SPLIT_IMAGES):
            return folder
    print(f"{name}: building the task under {folder}...", file=sys.stderr, flush=True)
    return build_task(name, folder, seed)


def truth(items: Sequence[DatasetItem]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image, ``(boxes x1 y1 x2 y2 in its pixels, class indices)`` from its YOLO labels."""
    import numpy as np

    out = []
    for item in items:
        boxes = np.array([b[1:] for b in item.boxes], dtype=float).reshape(-1, 4)
        scale = np.array([item.width, item.height] * 2, dtype=float)
        xyxy = np.hstack([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2])
        out.append((xyxy * scale, np.array([b[0] for b in item.boxes], dtype=int)))
    return out


def _predict_torchvision(run_dir: Path, paths: list[str]) -> list[tuple[Any, Any, Any]]:
    import numpy as np

    from mlsel.trainers.detection import DetectionPredictor

    # min_score 0: keep every box the model returns, as its val scoring does
    found = DetectionPredictor(run_dir).predict(paths, min_score=0.0)
    return [
        (
            np.array(f["boxes"], dtype=float).reshape(-1, 4),
            np.array(f["scores"], dtype=float),
            np.array(f["label_ids"], dtype=int),
        )
        for f in found
    ]


def _predict_ultralytics(run_dir: Path, paths: list[str]) -> list[tuple[Any, Any, Any]]:
    from ultralytics import YOLO

    model = YOLO(str(run_dir / "weights" / "best.pt"))
    out = []
    for lo in range(0, len(paths), 32):
        results: Any = model.predict(
            paths[lo : lo + 32],
            imgsz=SIDE,
            conf=SCORE_CONF,
            max_det=SCORE_MAX_DET,
            device="cpu",
            verbose=False,
        )
        for result in results:
            boxes = result.boxes
            out.append(
                (
                    boxes.xyxy.cpu().numpy(),
                    boxes.conf.cpu().numpy(),
                    boxes.cls.cpu().numpy().astype(int),
                )
            )
    return out


def score_test(dataset: Dataset, config: Config, run_dir: Path) -> dict[str, Any]:
    """COCO metrics of the run saved in ``run_dir`` on the dataset's test images."""
    from mlsel.trainers.detection.coco import coco_metrics

    test = dataset.split("test")
    paths = [item.path for item in test]
    predict = _predict_ultralytics if config.backend == "ultralytics" else _predict_torchvision
    predicted = predict(run_dir, paths)
    sizes = [(item.width, item.height) for item in test]
    return coco_metrics(truth(test), predicted, dataset.classes, sizes)


def _load() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def run_arm(dataset: Dataset, arm: str, home: Path, seconds: float, seed: int) -> dict[str, Any]:
    """Train arm ``arm`` for at most ``seconds`` in the fresh mlsel home ``home`` and score
    its best epoch on test; a failing arm is recorded with its one-line error."""
    from mlsel.experiment_store.store import Store
    from mlsel.trainers import train

    if arm == "search":
        return _search_arm(dataset, home.parent, seconds)
    config = arm_config(arm, dataset.num_classes, seed=seed)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ["MLSEL_HOME"] = str(home)
    entry: dict[str, Any] = {"label": ARMS[arm], "config": config.to_dict(), "load_before": _load()}
    deadline = Deadline(seconds)
    try:
        run_id, result = train(
            dataset,
            config,
            store=Store.open(home),
            device="cpu",
            on_epoch=deadline,
            raise_errors=False,
        )
    except MlselError as exc:  # an invalid config or missing weights: before training
        entry.update(error=f"{type(exc).__name__}: {exc}", load_after=_load())
        return entry
    wall = time.perf_counter() - deadline.start
    entry.update(
        run_id=run_id,
        status=result.status,
        epochs=len(result.curve),
        train_seconds=round(deadline.stopped_at or sum(r.seconds or 0 for r in result.curve), 1),
        wall_seconds=round(wall, 1),
        val_map=result.score,
        val_map50=result.metrics.get("map50"),
        curve=[
            {"epoch": r.epoch, "val_map": r.score, "loss": r.train_loss, "seconds": r.seconds}
            for r in result.curve
        ],
        weights=result.hardware.get("weights"),
    )
    if result.status == "failed" or result.artifact_dir is None:
        entry.update(error=result.error or "no saved model", load_after=_load())
        return entry
    started = time.perf_counter()
    coco = score_test(dataset, config, Path(result.artifact_dir))
    entry.update(
        test_map=coco["map"],
        test_map50=coco["map50"],
        test_map75=coco["map75"],
        test_per_class_ap=coco["per_class_ap"],
        test_images=coco["n_images"],
        test_boxes=coco["n_boxes"],
        score_seconds=round(time.perf_counter() - started, 1),
        load_after=_load(),
    )
    return entry


def _search_arm(dataset: Dataset, work: Path, seconds: float) -> dict[str, Any]:
    from benchmarks.detect_run import run_search_arm

    entry: dict[str, Any] = {"label": ARMS["search"], "load_before": _load()}
    folder = Path(dataset.root)
    folder = folder.parent if folder.is_file() else folder  # read from its data.yaml
    try:
        entry.update(run_search_arm(dataset, folder, work, seconds, score_test))
    except (RuntimeError, MlselError) as exc:
        entry["error"] = str(exc)
    entry["load_after"] = _load()
    return entry


def _write(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name and rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def save(results: dict[str, Any], out: Path) -> None:
    """``detect.json`` and ``detect.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    results["targets"] = targets(results)
    _write(out / "detect.json", json.dumps(results, indent=1, default=str) + "\n")
    _write(out / "detect.md", markdown(results))


def update(out: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` to the results in ``out/detect.json`` and save them, holding a lock,
    so that benchmark processes running side by side (one a core) merge what they measure."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".detect.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = out / "detect.json"
        results = json.loads(path.read_text()) if path.is_file() else {}
        results.setdefault("tasks", {})
        change(results)
        save(results, out)
    return results


# --- the command ---------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Build the tasks and run the arms, merging every result into ``detect.json``."""
    import torch

    for name, value in (("MLSEL_OFFLINE", "1"), ("YOLO_OFFLINE", "1")):
        os.environ.setdefault(name, value)
    os.environ.update(MLSEL_NO_BUNDLED="1", YOLO_AUTOINSTALL="false", YOLO_VERBOSE="false")
    settings = {
        "arm_seconds": args.arm_seconds,
        "image_size": SIDE,
        "epochs_cap": EPOCHS,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    check_sources(args.tasks)
    # Ultralytics reads its settings folder once, on import: one for the whole invocation
    args.work.mkdir(parents=True, exist_ok=True)
    yolo_config = tempfile.mkdtemp(prefix="yolo-config-", dir=args.work)
    os.environ["YOLO_CONFIG_DIR"] = yolo_config
    invocation = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tasks": list(args.tasks),
        "arms": list(args.arms),
        "load_before": _load(),
        "note": args.note,
        "settings": settings,
    }
    start = time.perf_counter()
    try:
        _run_tasks(args, settings)
    finally:
        shutil.rmtree(yolo_config, ignore_errors=True)
    invocation.update(load_after=_load(), seconds=round(time.perf_counter() - start, 1))

    def finish(results: dict[str, Any]) -> None:
        results["settings"] = settings
        results.setdefault("invocations", []).append(invocation)

    return update(args.out, finish)


def _record(
    name: str, arm: str, about: dict[str, Any], result: dict[str, Any], results: dict[str, Any]
) -> None:
    """Put ``result`` as arm ``arm`` of task ``name`` into ``results``."""
    entry = results["tasks"].get(name, {})
    if entry.get("seed") != about["seed"]:
        entry = {}  # measured with another seed: those arms do not compare
    entry.update(about)
    entry.setdefault("arms", {})[arm] = result
    results["tasks"][name] = entry


def _run_tasks(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from mlsel.profilers import read_dataset

    for name in args.tasks:
        dataset = read_dataset(task_folder(name, args.work, args.seed) / "data.yaml")
        about = {
            "summary": TASKS[name].summary,
            "seed": args.seed,
            "classes": list(dataset.classes),
            "sizes": {s: len(dataset.split(s)) for s in ("train", "val", "test")},
        }
        for arm in args.arms:
            print(f"{name}: arm {arm} ({ARMS[arm]})...", file=sys.stderr, flush=True)
            home = args.work / "runs" / name / arm / "home"
            result = run_arm(dataset, arm, home, args.arm_seconds, args.seed)
            result["settings"] = settings
            update(args.out, functools.partial(_record, name, arm, about, result))
            shown = result.get("error") or (
                f"test mAP50-95 {figure(result['test_map'])}, mAP50 "
                f"{figure(result['test_map50'])}, {result['epochs']} epochs in "
                f"{result['wall_seconds']:.0f} s"
            )
            print(f"  {shown}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(DEFAULT_ARMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--arm-seconds", type=float, default=300.0, help="wall budget of each arm (default 300)"
    )
    parser.add_argument("--work", type=Path, default=WORK, help="tasks and throwaway homes")
    parser.add_argument("--out", type=Path, default=OUT, help="where detect.json/.md go")
    parser.add_argument("--note", default="", help="recorded with this invocation")
    args = parser.parse_args(argv)
    if args.arm_seconds <= 0:
        parser.error(f"--arm-seconds must be a positive number of seconds; got {args.arm_seconds}")
    try:
        results = run_benchmark(args)
    except SourceMissing as exc:
        print(f"detect: {exc}", file=sys.stderr)
        return 2
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
