"""Build the meta-corpus, train the grid on every task, and export the bundled runs.

    .venv/bin/python -m benchmarks.bundle.harness                       # everything
    .venv/bin/python -m benchmarks.bundle.harness --shard 0/2 &          # two processes,
    .venv/bin/python -m benchmarks.bundle.harness --shard 1/2 &          # one core each
    .venv/bin/python -m benchmarks.bundle.harness --export data_cards/bundled/runs.parquet

Resumable: a (task, config) pair with a finished run in the store is not trained again, so
a killed harness continues where it stopped. Runs are logged with ``source = bundled`` to
the store at ``--home`` (default ``benchmarks/out/bundle/home``); tasks are written under
``--tasks-dir``. Uses a GPU when there is one (``--device auto``). ``--detect`` adds the
detection tasks and their YOLO11 grid (slow on a CPU: scratch YOLO needs many epochs).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "out" / "bundle"

__all__ = ["done_pairs", "export", "main", "run_corpus"]


def done_pairs(store) -> set[tuple[str, str]]:  # noqa: ANN001
    """(dataset fingerprint, config key) of every bundled run that ended."""
    frame = store.sql(
        "SELECT dataset, config_key FROM runs WHERE source = 'bundled' "
        "AND status IN ('completed', 'failed', 'pruned', 'timeout')"
    )
    return set(frame.iter_rows())


def run_corpus(
    home: Path,
    tasks_dir: Path,
    *,
    shard: tuple[int, int] = (0, 1),
    device: str = "auto",
    limit_tasks: int | None = None,
    configs: tuple | None = None,
    detect: bool = False,
    say=print,
) -> dict[str, int]:  # noqa: ANN001
    """Build, profile and train the shard's tasks; returns counts of runs by status.

    ``configs`` replaces the grid of every task; ``detect`` adds the detection tasks.
    """
    from benchmarks.bundle.grid import grid_for
    from benchmarks.bundle.tasks import build_task, corpus_tasks, detect_tasks
    from mlsel.experiment_store import Store
    from mlsel.profilers import read_dataset
    from mlsel.profilers.profile import profile_cached
    from mlsel.trainers import TensorCache, train

    index, count = shard
    specs = (corpus_tasks() + (detect_tasks() if detect else []))[:limit_tasks][index::count]
    store = Store.open(home)
    loaded: dict = {}
    counts: dict[str, int] = {}
    for number, spec in enumerate(specs, start=1):
        folder = build_task(spec, tasks_dir, loaded)
        dataset = read_dataset(folder)
        profile_cached(dataset, store)
        done = done_pairs(store)
        cache = TensorCache()
        for config in configs or grid_for(dataset.task):
            if (dataset.fingerprint, config.key()) in done:
                continue
            started = time.time()
            _, result = train(
                dataset,
                config,
                store=store,
                device=device,
                cache=cache,
                source="bundled",
                raise_errors=False,
            )
            counts[result.status] = counts.get(result.status, 0) + 1
            score = "-" if result.score is None else f"{result.score:.3f}"
            say(
                f"[{index}/{count} task {number}/{len(specs)}] {spec.name} {config.arch} "
                f"{config.pretrained or 'scratch'} {config.finetune} lr {config.lr:g} "
                f"{config.augment} {config.epochs} ep: {result.status} {score} "
                f"({time.time() - started:.1f} s)"
            )
    return counts


def export(home: Path, path: Path) -> dict[str, int]:
    """Write the bundled runs of the corpus store to ``path`` (an mlsel export)."""
    from mlsel.experiment_store import Store

    path.parent.mkdir(parents=True, exist_ok=True)
    return Store.open(home).export_parquet(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=OUT / "home")
    parser.add_argument("--tasks-dir", type=Path, default=OUT / "tasks")
    parser.add_argument("--shard", default="0/1", help="i/n: this process's share of tasks")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--limit-tasks", type=int, default=None)
    parser.add_argument(
        "--detect", action="store_true", help="add the detection tasks (YOLO11 from scratch)"
    )
    parser.add_argument(
        "--export",
        type=Path,
        default=None,
        help="only export the store's runs to this Parquet file",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("MLSEL_OFFLINE", "1")
    if args.export is not None:
        print(
            f"exported {export(args.home, args.export)} to {args.export} "
            f"({args.export.stat().st_size / 1e6:.2f} MB)"
        )
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    index, count = (int(x) for x in args.shard.split("/"))
    started = time.time()
    counts = run_corpus(
        args.home,
        args.tasks_dir,
        shard=(index, count),
        device=args.device,
        limit_tasks=args.limit_tasks,
        detect=args.detect,
        say=lambda line: print(line, flush=True),
    )
    print(f"shard {index}/{count} done in {time.time() - started:.0f} s: {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
