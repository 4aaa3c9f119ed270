"""Build the meta-corpus, train the grid on every task, and export the bundled runs.

    .venv/bin/python -m benchmarks.bundle.harness                       # everything
    .venv/bin/python -m benchmarks.bundle.harness --shard 0/2 &          # two processes,
    .venv/bin/python -m benchmarks.bundle.harness --shard 1/2 &          # one core each
    .venv/bin/python -m benchmarks.bundle.harness --export data_cards/bundled/runs.parquet

Resumable: a (task, config) pair with a finished run in the store is not trained again, so
a killed harness continues where it stopped. Runs are logged with ``source = bundled`` to
the store at ``--home`` (default ``benchmarks/out/bundle/home``); tasks are written under
``--tasks-dir``. Uses a GPU when there is one (``--device auto``).

``--kind detect`` trains the real detection tasks of ``benchmarks/detect_tasks.py`` (built
under ``--detect-work``, as the detection benchmark builds them) with the detection grid,
each run stopped before an epoch that would take it past ``DETECT_RUN_SECONDS`` of the
process's CPU time; run it with ``--threads 1``, one process a core, so that CPU time is
the run's time. ``--seed-from FILE`` first imports an export (the shipped runs), so a
fresh clone resumes the corpus where the committed export left it:

    .venv/bin/python -m benchmarks.bundle.harness --kind detect --threads 1 --shard 0/2 \
        --seed-from data_cards/bundled/runs.parquet
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from benchmarks.bundle.plan import KINDS, corpus_plan
from mlsel.kernel.errors import StopRun
from mlsel.kernel.records import EpochRecord

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "out" / "bundle"

__all__ = ["CpuCap", "done_pairs", "export", "main", "run_corpus"]


class CpuCap:
    """An ``on_epoch`` callback: ``StopRun("timeout")`` unless one more epoch, costing as
    much CPU time as the last, still ends within ``seconds`` of this process's CPU time
    since the callback was made (decoding and building the model count)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = self.last = time.process_time()

    def __call__(self, record: EpochRecord) -> None:
        now = time.process_time()
        epoch, self.last = now - self.last, now
        if now - self.start + epoch > self.seconds:
            raise StopRun("timeout")


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
    kind: str = "classify",
    detect_work: Path | None = None,
    by_pair: bool = False,
    build_only: bool = False,
    say=print,
) -> dict[str, int]:  # noqa: ANN001
    """Build, profile and train the shard's tasks; returns counts of runs by status.

    ``configs`` replaces the grid of every task; ``kind`` picks the tasks (see
    :data:`KINDS`), ``detect_work`` where the detection tasks are built. ``by_pair``
    shards the (task, config) pairs instead of the tasks, so that a few long tasks
    spread over the processes; every process then reads every task, so build them
    first (``build_only``: write the tasks, train nothing), since two processes must
    not write the same task at once.
    """
    from benchmarks.bundle.grid import DETECT_RUN_SECONDS, grid_for
    from mlsel.experiment_store import Store
    from mlsel.profilers import read_dataset
    from mlsel.profilers.profile import profile_cached
    from mlsel.trainers import TensorCache, train

    if detect_work is None:
        from benchmarks.detect import WORK

        detect_work = WORK
    index, count = shard
    specs = corpus_plan(kind, tasks_dir, detect_work)[:limit_tasks]
    specs = specs if by_pair else specs[index::count]
    pair = -1
    store = Store.open(home)
    loaded: dict = {}
    counts: dict[str, int] = {}
    for number, task in enumerate(specs, start=1):
        name = task.name
        dataset = read_dataset(task.build(loaded))
        if build_only:
            say(f"[{index}/{count} task {number}/{len(specs)}] {name}: built")
            continue
        profile_cached(dataset, store)
        done = done_pairs(store)
        cache = TensorCache()
        for config in configs or task.configs or grid_for(dataset.task):
            pair += 1
            if by_pair and pair % count != index:
                continue
            if (dataset.fingerprint, config.key()) in done:
                continue
            started = time.time()
            _, result = train(
                dataset,
                config,
                store=store,
                device=device,
                on_epoch=CpuCap(DETECT_RUN_SECONDS) if dataset.task == "detect" else None,
                cache=cache,
                source="bundled",
                raise_errors=False,
            )
            counts[result.status] = counts.get(result.status, 0) + 1
            score = "-" if result.score is None else f"{result.score:.3f}"
            say(
                f"[{index}/{count} task {number}/{len(specs)}] {name} {config.arch} "
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
    parser.add_argument(
        "--by-pair", action="store_true", help="shard (task, config) pairs, not tasks"
    )
    parser.add_argument(
        "--build-only", action="store_true", help="write the tasks (and pools), train nothing"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--limit-tasks", type=int, default=None)
    parser.add_argument("--kind", choices=KINDS, default="classify", help="which tasks")
    parser.add_argument("--detect-work", type=Path, default=None, help="detection tasks' folder")
    parser.add_argument(
        "--seed-from", type=Path, default=None, help="import this export first (resume)"
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
    if args.seed_from is not None:
        from mlsel.experiment_store import Store

        report = Store.open(args.home).import_file(args.seed_from)
        print(f"seeded from {args.seed_from}: {report}", file=sys.stderr)
    index, count = (int(x) for x in args.shard.split("/"))
    started = time.time()
    counts = run_corpus(
        args.home,
        args.tasks_dir,
        shard=(index, count),
        device=args.device,
        limit_tasks=args.limit_tasks,
        kind=args.kind,
        detect_work=args.detect_work,
        by_pair=args.by_pair,
        build_only=args.build_only,
        say=lambda line: print(line, flush=True),
    )
    print(f"shard {index}/{count} done in {time.time() - started:.0f} s: {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
