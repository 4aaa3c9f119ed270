"""Warm-started TPE vs cold TPE vs random search, on real offline image tasks.

For each task (digits, MNIST and Fashion-MNIST subsets, all shipped offline) and seed,
each arm runs ``mlsel``'s search with the same budget, the same candidate space and the
same devices, each in a fresh ``MLSEL_HOME`` (so no arm learns from another's runs).
Reported per arm: the best-so-far score over time, the time it needs to reach cold TPE's
final best (same task and seed), and the area under the best-so-far curve (mean best
score over the budget, 0 before the first completed trial). Writes
``benchmarks/out/warmstart.{md,json,png}``.

    .venv/bin/python benchmarks/warmstart.py                 # ~14 min on 2 idle cores
    .venv/bin/python benchmarks/warmstart.py --budget 120 --seeds 5 --per-class 100
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
ARMS = ("warm-tpe", "cold-tpe", "random")
TASKS = ("digits", "mnist", "fashion-mnist")


def _space():
    from mlsel.metalearn.space import ARCHITECTURES, CandidateSpace

    archs = ("small_cnn", "resnet18", "mobilenet_v3_small")
    return CandidateSpace(architectures={a: ARCHITECTURES[a] for a in archs})


def run_arm(
    task_dir: Path,
    profile,
    arm: str,
    seed: int,
    budget_s: float,
    gpus: str,
    bundled: bool,
    epochs: int,
    size: int,
) -> dict:
    """One search in a fresh home (the task's profile pre-stored, so profiling is not
    timed); returns its finished trials and best-so-far curve."""
    from mlsel.experiment_store import Store
    from mlsel.metalearn.search import SearchSettings, run_search

    with tempfile.TemporaryDirectory(prefix=f"mlsel-bench-{arm}-") as home:
        os.environ["MLSEL_HOME"] = home
        if bundled:
            os.environ.pop("MLSEL_NO_BUNDLED", None)
        else:
            os.environ["MLSEL_NO_BUNDLED"] = "1"
        store = Store.open(home)
        store.save_profile(profile)
        if bundled and arm == "warm-tpe":  # as on first use of the CLI; not timed
            from mlsel.metalearn.bundled import seed_bundled

            seed_bundled(store, home=home)
        settings = SearchSettings(
            budget_s=budget_s,
            gpus=gpus,
            sampler="random" if arm == "random" else "tpe",
            pruner="hyperband",
            warm_start=arm == "warm-tpe",
            top_k=3,
            seed=seed,
            output=None,
            refit=False,
            space=_space(),
            fixed={"epochs": epochs, "image_size": size},
        )
        report = run_search(task_dir, settings, home=home)
    return {
        "arm": arm,
        "seed": seed,
        "elapsed_s": report.elapsed_s,
        "history": report.progress.history,
        "ended": report.progress.ended,
        "final": report.progress.history[-1][1] if report.progress.history else 0.0,
        "trials": report.progress.finished,
        "statuses": dict(report.progress.statuses),
        "best_arch": report.best.arch if report.best else None,
    }


def best_at(history: list, t: float) -> float:
    best = 0.0
    for when, score in history:
        if when <= t:
            best = max(best, score)
    return best


def time_to_reach(history: list, threshold: float) -> float:
    """Seconds until the best-so-far first reaches ``threshold`` (inf if never)."""
    for when, score in history:
        if score >= threshold - 1e-12:
            return when
    return math.inf


def area(history: list, budget_s: float, steps: int = 400) -> float:
    """Mean best-so-far score over the budget (a step function, 0 before any result)."""
    return sum(best_at(history, budget_s * (i + 0.5) / steps) for i in range(steps)) / steps


def _prepare(tasks: list[str], root: Path, per_class: int) -> dict[str, Path]:
    from mlsel.profilers import write_sample

    paths = {}
    for task in tasks:
        out = root / f"{task}-{per_class}"
        if not out.exists():
            write_sample(task, out, classes=10, per_class=per_class)
        paths[task] = out
    return paths


def _plot(results: list[dict], budget_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in results})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    grid = [budget_s * i / 200 for i in range(201)]
    for ax, task in zip(axes[0], tasks, strict=True):
        for arm in ARMS:
            runs = [r for r in results if r["task"] == task and r["arm"] == arm]
            if runs:
                mean = [statistics.mean(best_at(r["history"], t) for r in runs) for t in grid]
                ax.step(grid, mean, where="post", label=f"{arm} (n={len(runs)})")
        ax.set_title(task)
        ax.set_xlabel("seconds")
        ax.set_ylabel("best macro F1 so far (mean over seeds)")
        ax.axvline(budget_s / 3, color="grey", linestyle=":", linewidth=1)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _table(results: list[dict], budget_s: float) -> str:
    lines = [
        "| task | arm | seeds | final best | AUC (mean best) | time to cold-TPE final "
        "(median s) | reached within 1/3 budget | trials |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in sorted({r["task"] for r in results}):
        for arm in ARMS:
            runs = [r for r in results if r["task"] == task and r["arm"] == arm]
            if not runs:
                continue
            reach = [r["reach_cold_final_s"] for r in runs]
            within = sum(1 for x in reach if x <= budget_s / 3)
            med = statistics.median(reach)
            lines.append(
                f"| {task} | {arm} | {len(runs)} | {statistics.mean(r['final'] for r in runs):.3f}"
                f" | {statistics.mean(r['auc'] for r in runs):.3f} | "
                f"{'never' if math.isinf(med) else f'{med:.0f}'} | {within}/{len(runs)} | "
                f"{statistics.mean(r['trials'] for r in runs):.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=45.0, help="seconds per search")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--per-class", type=int, default=20, help="images per class")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--gpus", default="cpu")
    parser.add_argument(
        "--bundled",
        action="store_true",
        help="warm start from the bundled experience too (default: rules only)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    OUT.mkdir(parents=True, exist_ok=True)
    data = _prepare(args.tasks, Path(tempfile.gettempdir()) / "mlsel-bench-data", args.per_class)
    results = []
    started = time.time()
    from mlsel.profilers import read_dataset
    from mlsel.profilers.profile import profile_dataset

    for task, path in data.items():
        profile = profile_dataset(read_dataset(path))
        for seed in range(args.seeds):
            by_arm = {}
            for arm in ARMS:
                by_arm[arm] = run_arm(
                    path,
                    profile,
                    arm,
                    seed,
                    args.budget,
                    args.gpus,
                    args.bundled,
                    args.epochs,
                    args.image_size,
                )
                print(
                    f"{task} seed {seed} {arm}: final {by_arm[arm]['final']:.3f} after "
                    f"{by_arm[arm]['trials']} trials ({by_arm[arm]['elapsed_s']:.0f} s)",
                    flush=True,
                )
            cold_final = by_arm["cold-tpe"]["final"]
            for r in by_arm.values():
                r.update(
                    task=task,
                    auc=area(r["history"], args.budget),
                    reach_cold_final_s=time_to_reach(r["history"], cold_final),
                )
                results.append(r)
    table = _table(results, args.budget)
    source = "bundled + rules" if args.bundled else "rules"
    header = (
        f"budget {args.budget:.0f} s per search, {args.seeds} seed(s), "
        f"{args.per_class} images/class, epochs {args.epochs}, size {args.image_size}, "
        f"devices {args.gpus}, warm start from {source}; "
        f"total {time.time() - started:.0f} s"
    )
    (OUT / "warmstart.md").write_text(f"# Warm start benchmark\n\n{header}\n\n{table}\n")
    (OUT / "warmstart.json").write_text(
        json.dumps({"args": vars(args), "results": results}, indent=1, default=str)
    )
    _plot(results, args.budget, OUT / "warmstart.png")
    print(header)
    print(table)


if __name__ == "__main__":
    main()
