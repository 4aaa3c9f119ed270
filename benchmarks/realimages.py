"""Transfer benchmark on real images that Debian ships: mlsel's search against what a
practitioner would do with the same data and the same CPU.

Four image-classification tasks, each from its own Debian package (the icons of two icon
themes by category folder, colour emoji by Unicode group, Battle for Wesnoth unit sprites
by race; ``data_cards/sources/realimages.md`` names every source). Each task is built into
``train/ val/ test/`` class folders three times, one stratified split of the same images
per seed (``<out>/realimages/tasks/<task>/seed<k>/``). Per task and seed, three arms pick
on ``val`` and are scored on ``test`` (scikit-learn macro F1):

* (a) ``mlsel run --budget 3m --gpus cpu`` in a fresh home with a cold machine cache; its
  exported best model predicts ``test``;
* (b) the linear probe: frozen features of each shipped ImageNet backbone at 224 px,
  logistic regression, the backbone best on ``val``;
* (c) ``mlsel train --arch efficientnet_lite0 --finetune head --image-size 224 --epochs 10
  --augment light``, whose saved model predicts ``test``.

The mlsel arms get a view of the split without ``test/`` (``<out>/realimages/fit/``), so
nothing in them reads a test image. The tasks are built by ``realimages_tasks.py`` and the report
written by ``realimages_report.py``. Writes ``realimages.json`` (every number, merged with
the results already there), ``realimages.md`` and ``realimages_curves.png`` to ``--out``.

    .venv/bin/python benchmarks/realimages.py                          # ~1.5 h on 2 cores
    .venv/bin/python benchmarks/realimages.py --arms b --seeds 0       # the probe only
    .venv/bin/python benchmarks/realimages.py --tasks noto-emoji --build-only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

from benchmarks.cli_run import mlsel_json  # noqa: E402
from benchmarks.realimages_report import ARMS, markdown, plot_curves, summarise
from benchmarks.realimages_tasks import (
    PER_CLASS,
    TASKS,
    TEST_SHARE,
    VAL_SHARE,
    SourceMissing,
    build_task,
    check_sources,
    package_version,
    split_items,
)

OUT = Path(__file__).resolve().parent / "out"
SEEDS = (0, 1, 2)
ARM_NAMES = {
    "a": "mlsel run --budget {budget} --gpus cpu",
    "b": "linear probe on frozen ImageNet features",
    "c": "mlsel train efficientnet_lite0 head, 10 epochs",
}
BACKBONES = (
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "mobilenet_v2",
    "squeezenet1_1",
)
PROBE_SIZE = 224

# --- the arms ------------------------------------------------------------------------


def macro_f1(model_dir: Path, split: Path) -> float:
    """Macro F1 on a split folder of a model folder that mlsel saved (torchvision, timm
    or Ultralytics)."""
    from sklearn.metrics import f1_score

    from mlsel.trainers import Predictor

    if (model_dir / "model.pt").is_file():
        predictor: Any = Predictor(model_dir)
    else:
        from mlsel.trainers.ultralytics_backend import YoloPredictor

        predictor = YoloPredictor(model_dir)
    paths, labels = split_items(split)
    return float(f1_score(labels, predictor.predict([str(p) for p in paths]), average="macro"))


def arm_search(folder: Path, fit: Path, runs: Path, budget: str) -> dict[str, Any]:
    """(a) ``mlsel run`` on the fit view; its exported best model scored on ``test``."""
    best = runs / "best"
    report, seconds = mlsel_json(
        ["run", str(fit), "--budget", budget, "--gpus", "cpu", "--output", str(best)],
        runs / "home",
        fresh=True,
    )
    if report["best"] is None:
        raise RuntimeError("mlsel run finished no trial")
    return {
        "test_f1": macro_f1(best, folder / "test"),
        "val_f1": report["best"]["score"],
        "seconds": seconds,
        "model": report["best"]["arch"],
        "config": report["best"]["config"],
        "history": report["history"],
        "trials": report["trials"],
        # seconds the trials trained (completed, pruned or stopped at the deadline)
        "training_s": sum(row["seconds"] or 0.0 for row in report["leaderboard"]),
        "stop_reason": report["stop_reason"],
        "leaderboard": report["leaderboard"],
    }


def arm_default(folder: Path, fit: Path, runs: Path) -> dict[str, Any]:
    """(c) one ``mlsel train`` of the usual default; its saved model scored on ``test``."""
    args = ["train", str(fit), "--arch", "efficientnet_lite0", "--finetune", "head"]
    args += ["--image-size", "224", "--epochs", "10", "--augment", "light", "--device", "cpu"]
    result, seconds = mlsel_json(args, runs / "home", fresh=True)
    return {
        "test_f1": macro_f1(Path(result["artifact_dir"]), folder / "test"),
        "val_f1": result["score"],
        "seconds": seconds,
    }


def _features(arch: str, pixels: Any) -> Any:
    """Frozen global-average-pooled features of uint8 ``(N, H, W, 3)`` images."""
    import torch

    from mlsel.kernel.backbones import (
        NORMALISATION,
        load_efficientnet_lite,
        load_mobilenet_v2_backbone,
        load_squeezenet1_1,
    )

    if arch.startswith("efficientnet_"):
        trunk: Any = load_efficientnet_lite(arch, image_size=PROBE_SIZE).extract_features
    elif arch == "squeezenet1_1":  # Caffe weights: BGR input
        features: Any = load_squeezenet1_1().features
        trunk = lambda x: features(x.flip(1))  # noqa: E731
    else:
        trunk = load_mobilenet_v2_backbone()
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALISATION[arch])
    out = []
    with torch.inference_mode():
        for lo in range(0, len(pixels), 32):
            x = torch.from_numpy(pixels[lo : lo + 32]).permute(0, 3, 1, 2).float() / 255.0
            out.append(trunk((x - mean) / std).mean(dim=(2, 3)))
    return torch.cat(out).numpy()


# Every seed of a task splits the same images: their features are computed once, and each
# seed is charged the full time it took (decoding and every backbone).
_PROBE_FEATURES: dict[frozenset[str], tuple[dict[str, dict[str, Any]], float]] = {}


def _digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def _pool_features(paths: list[Path]) -> tuple[dict[str, dict[str, Any]], float]:
    """Features of every image by backbone and content digest (each seed's folders hold
    links or copies of the same files), and the seconds they took."""
    import numpy as np

    from mlsel.kernel.images import decode

    by_digest = {_digest(p): p for p in paths}
    key = frozenset(by_digest)
    if key not in _PROBE_FEATURES:
        start = time.perf_counter()
        ordered = sorted(by_digest)
        pixels = np.stack([decode(by_digest[d], PROBE_SIZE) for d in ordered])
        by_arch = {
            arch: dict(zip(ordered, _features(arch, pixels), strict=True)) for arch in BACKBONES
        }
        _PROBE_FEATURES[key] = (by_arch, time.perf_counter() - start)
    return _PROBE_FEATURES[key]


def arm_probe(folder: Path) -> dict[str, Any]:
    """(b) The practitioner's baseline: for each shipped ImageNet backbone, frozen features
    at 224 px and a logistic regression fitted on ``train``; the backbone best on ``val``
    is scored on ``test``. The seconds include decoding and every backbone's features
    (computed once per task: every seed splits the same images, and each is charged the
    whole time)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    start = time.perf_counter()
    items = {split: split_items(folder / split) for split in ("train", "val", "test")}
    every = [Path(p) for paths, _ in items.values() for p in paths]
    by_arch, feature_seconds = _pool_features(every)
    scores: dict[str, dict[str, float]] = {}
    features: dict[str, dict[str, Any]] = {}
    for arch in BACKBONES:
        features[arch] = {
            split: np.stack([by_arch[arch][_digest(Path(p))] for p in paths])
            for split, (paths, _) in items.items()
        }
        probe = LogisticRegression(max_iter=2000).fit(features[arch]["train"], items["train"][1])
        scores[arch] = {
            split: float(
                f1_score(items[split][1], probe.predict(features[arch][split]), average="macro")
            )
            for split in ("val", "test")
        }
    best = max(BACKBONES, key=lambda arch: scores[arch]["val"])
    fits = time.perf_counter() - start
    # Not the baseline the target names, but what a careful practitioner does next, and
    # what mlsel does with its kept probe: fit the chosen probe again on train + val.
    chosen = features[best]
    refit = LogisticRegression(max_iter=2000).fit(
        np.concatenate([chosen["train"], chosen["val"]]), [*items["train"][1], *items["val"][1]]
    )
    return {
        "test_f1": scores[best]["test"],
        "val_f1": scores[best]["val"],
        "refit_test_f1": float(
            f1_score(items["test"][1], refit.predict(chosen["test"]), average="macro")
        ),
        "seconds": feature_seconds + fits,
        "model": best,
        "per_backbone": scores,
    }


# --- the command ---------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text())
    return {"tasks": {}}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Build the tasks and run the arms, merging every result into ``realimages.json``."""
    from mlsel.cli._common import parse_duration

    work = args.out / "realimages"
    path = args.out / "realimages.json"
    results = _load(path)
    results["settings"] = {
        "budget": args.budget,
        "budget_s": parse_duration(args.budget),
        "per_class": PER_CLASS,
        "shares": {"val": VAL_SHARE, "test": TEST_SHARE},
        "backbones": list(BACKBONES),
        "cpus": os.cpu_count(),
    }
    tasks = [TASKS[name] for name in args.tasks]
    for task in tasks:
        check_sources(task)
    for task in tasks:
        entry = results["tasks"].setdefault(task.name, {"seeds": {}})
        entry["summary"] = task.summary
        entry["sources"] = {pkg: package_version(pkg) for pkg, _ in task.packages}
        for seed in args.seeds:
            folder, fit = build_task(task, work, seed)
            entry["classes"] = sorted(p.name for p in (folder / "train").iterdir())
            runs = entry["seeds"].setdefault(str(seed), {})
            runs["sizes"] = {s: len(split_items(folder / s)[0]) for s in ("train", "val", "test")}
            for arm in [] if args.build_only else args.arms:
                print(f"{task.name} seed {seed} arm ({arm})...", file=sys.stderr, flush=True)
                where = work / "runs" / f"{task.name}-seed{seed}-{arm}"
                runs[arm] = _run_arm(arm, folder, fit, where, args.budget)
                _save(results, args.out)
    return results


def _run_arm(arm: str, folder: Path, fit: Path, runs: Path, budget: str) -> dict[str, Any]:
    """One arm's result; a failing arm is recorded with its one-line error."""
    try:
        if arm == "a":
            result = arm_search(folder, fit, runs, budget)
        elif arm == "b":
            result = arm_probe(folder)
        else:
            result = arm_default(folder, fit, runs)
    except RuntimeError as exc:
        print(f"  failed: {exc}", file=sys.stderr)
        return {"error": str(exc)}
    print(f"  test macro F1 {result['test_f1']:.3f} in {result['seconds']:.0f} s", file=sys.stderr)
    return result


def _save(results: dict[str, Any], out: Path) -> None:
    summary = summarise(results, results["settings"]["budget_s"])
    results["summary"] = summary
    out.mkdir(parents=True, exist_ok=True)
    (out / "realimages.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "realimages.md").write_text(markdown(results, summary))
    plot_curves(results, out / "realimages_curves.png")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--budget", default="3m", help="mlsel run's --budget (default 3m)")
    parser.add_argument("--out", type=Path, default=OUT, help="results folder (tasks below it)")
    parser.add_argument("--build-only", action="store_true", help="build the tasks, run nothing")
    args = parser.parse_args(argv)
    try:
        results = run_benchmark(args)
    except SourceMissing as exc:
        print(f"realimages: {exc}", file=sys.stderr)
        return 2
    if args.build_only:
        print(f"built {', '.join(args.tasks)} under {args.out / 'realimages' / 'tasks'}")
    else:
        print(markdown(results, summarise(results, results["settings"]["budget_s"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
