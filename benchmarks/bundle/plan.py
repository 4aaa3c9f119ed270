"""Which tasks the corpus harness trains, and with which configs.

Kinds (``harness --kind``):

* ``classify``: the first edition's 45 tasks (:mod:`benchmarks.bundle.tasks`) and its
  :data:`~benchmarks.bundle.grid.GRID`;
* ``detect``: the real detection tasks of ``benchmarks/detect_tasks.py`` and the
  :data:`~benchmarks.bundle.grid.DETECT_GRID`;
* ``real``: the second edition, tasks derived from every source's pool
  (:mod:`benchmarks.bundle.derive`), each trained with the
  :data:`~benchmarks.bundle.grid.PROBE_GRID`; a stratified subset of two tasks a source
  (:func:`tuned_subset`) also gets the fine-tuning
  :data:`~benchmarks.bundle.grid.TUNE_GRID`;
* ``all``: all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsel.kernel.records import Config

__all__ = ["KINDS", "CorpusTask", "corpus_plan", "tuned_subset"]

KINDS = ("classify", "detect", "real", "all")
#: Source kinds whose images are grey: no colour-change tasks.
GREY_KINDS = ("digits", "clothes")


@dataclass(frozen=True)
class CorpusTask:
    """One task of the corpus: ``build(loaded)`` writes it (unless it is there) and returns
    its folder; ``configs`` are what it is trained with (``None``: the grid of its kind)."""

    name: str
    build: Callable[[dict[str, Any]], Path]
    configs: tuple[Config, ...] | None = None


def tuned_subset(specs: list[Any]) -> set[str]:
    """Names of two tasks of each source's plan (``specs``: :class:`RealTask`, in plan
    order): its 10-a-class subset of the most classes, and its blur or its hue task in
    turn, so that fine-tuning sees every source and more than one family."""
    by_source: dict[str, list[Any]] = {}
    for spec in specs:
        by_source.setdefault(spec.source, []).append(spec)
    chosen: set[str] = set()
    for turn, (_, tasks) in enumerate(sorted(by_source.items())):
        subsets = [t for t in tasks if t.family == "subset" and t.per_class == 10]
        other = [t for t in tasks if t.family == ("blur", "hue")[turn % 2]]
        chosen.update(t.name for t in subsets[-1:] + other[:1])
    return chosen


def _real(tasks_dir: Path) -> list[CorpusTask]:
    from benchmarks.bundle.derive import build_real_task, plan_tasks
    from benchmarks.bundle.grid import PROBE_GRID, TUNE_GRID
    from benchmarks.bundle.pools import build_pool
    from benchmarks.bundle.sources import SourceMissing, corpus_sources

    pools_dir, out = tasks_dir / "pools", tasks_dir / "real"
    planned: list[tuple[Any, Any]] = []
    for source in corpus_sources():
        try:
            pool = build_pool(source, pools_dir)
        except SourceMissing as exc:
            print(f"left out {source.name}: {exc}")  # noqa: T201 - the harness's progress
            continue
        colour = source.kind not in GREY_KINDS
        planned += [(spec, pool) for spec in plan_tasks(pool, colour=colour)]
    tuned = tuned_subset([spec for spec, _ in planned])
    return [
        CorpusTask(
            spec.name,
            lambda loaded, spec=spec, pool=pool: build_real_task(spec, pool, out),
            PROBE_GRID + TUNE_GRID if spec.name in tuned else PROBE_GRID,
        )
        for spec, pool in planned
    ]


def corpus_plan(kind: str, tasks_dir: Path, detect_work: Path) -> list[CorpusTask]:
    """The tasks of ``kind`` (see the module docstring), in a fixed order."""
    from benchmarks.bundle.tasks import build_task, corpus_tasks

    plan: list[CorpusTask] = []
    if kind in ("classify", "all"):
        plan += [
            CorpusTask(spec.name, lambda loaded, spec=spec: build_task(spec, tasks_dir, loaded))
            for spec in corpus_tasks()
        ]
    if kind in ("detect", "all"):
        from benchmarks.detect import task_folder
        from benchmarks.detect_tasks import TASKS

        plan += [
            CorpusTask(name, lambda loaded, name=name: task_folder(name, detect_work, seed=0))
            for name in TASKS
        ]
    if kind in ("real", "all"):
        plan += _real(tasks_dir)
    return plan
