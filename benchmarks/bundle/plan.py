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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from mlsel.kernel.records import Config

__all__ = ["GREY_KINDS", "KINDS", "CorpusTask", "corpus_plan", "plan_sources", "tuned_subset"]

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


def _first_edition(build: Callable[..., Path], spec: Any, root: Path, loaded: Any) -> Path:
    return build(spec, root, loaded)  # the sources in memory, shared by its tasks


def _ignore_loaded(build: Callable[..., Path], *args: Any) -> Path:
    *given, _loaded = args  # these builds read no source arrays
    return build(*given)


def tuned_subset(specs: list[Any]) -> set[str]:
    """Names of two tasks of each source's plan (``specs``: :class:`RealTask`, in plan
    order): its subset of at most 10 images a class with the most classes, and its blur
    or its hue task in turn (whichever it has when its turn's family is missing), so
    that fine-tuning sees every source and more than one family. Every task chosen has
    at most 30 training images a class, which keeps fine-tuning affordable on a CPU."""
    by_source: dict[str, list[Any]] = {}
    for spec in specs:
        by_source.setdefault(spec.source, []).append(spec)
    chosen: set[str] = set()
    for turn, (_, tasks) in enumerate(sorted(by_source.items())):
        few = [t for t in tasks if t.family == "subset" and t.per_class <= 10]
        subset = max(few, key=lambda t: (t.classes, t.per_class), default=None)
        families = ("blur", "hue") if turn % 2 == 0 else ("hue", "blur")
        other = next((t for f in families for t in tasks if t.family == f), None)
        chosen.update(t.name for t in (subset, other) if t is not None)
    return chosen


def plan_sources(
    sources: Iterable[Any], pools: Mapping[str, Any]
) -> tuple[dict[str, list[Any]], set[str]]:
    """The tasks derived from each built pool, by source (``plan_tasks``: no colour
    changes and a 14 px resolution task for grey sources), and the names of those that
    :func:`tuned_subset` gives the fine-tuning grid too."""
    from benchmarks.bundle.derive import plan_tasks

    plans = {}
    for source in sources:
        if source.name in pools:
            grey = source.kind in GREY_KINDS
            plans[source.name] = plan_tasks(
                pools[source.name], colour=not grey, small=14 if grey else 32
            )
    return plans, tuned_subset([spec for specs in plans.values() for spec in specs])


def _real(tasks_dir: Path) -> list[CorpusTask]:
    from benchmarks.bundle.derive import build_real_task
    from benchmarks.bundle.grid import PROBE_GRID, TUNE_GRID
    from benchmarks.bundle.pools import build_pool
    from benchmarks.bundle.sources import SourceMissing, corpus_sources

    pools_dir, out = tasks_dir / "pools", tasks_dir / "real"
    sources, pools = corpus_sources(), {}
    for source in sources:
        try:
            pools[source.name] = build_pool(source, pools_dir)
        except SourceMissing as exc:
            print(f"left out {source.name}: {exc}")  # noqa: T201 - the harness's progress
    plans, tuned = plan_sources(sources, pools)
    return [
        CorpusTask(
            spec.name,
            partial(_ignore_loaded, build_real_task, spec, pools[name], out),
            PROBE_GRID + TUNE_GRID if spec.name in tuned else PROBE_GRID,
        )
        for name, specs in plans.items()
        for spec in specs
    ]


def corpus_plan(kind: str, tasks_dir: Path, detect_work: Path) -> list[CorpusTask]:
    """The tasks of ``kind`` (see the module docstring), in a fixed order."""
    from benchmarks.bundle.tasks import build_task, corpus_tasks

    plan: list[CorpusTask] = []
    if kind in ("classify", "all"):
        plan += [
            CorpusTask(spec.name, partial(_first_edition, build_task, spec, tasks_dir))
            for spec in corpus_tasks()
        ]
    if kind in ("detect", "all"):
        from benchmarks.detect import task_folder
        from benchmarks.detect_tasks import TASKS

        plan += [
            CorpusTask(name, partial(_ignore_loaded, task_folder, name, detect_work, 0))
            for name in TASKS
        ]
    if kind in ("real", "all"):
        plan += _real(tasks_dir)
    return plan
