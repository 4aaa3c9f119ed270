"""`mlsel retrain NAME`: train a challenger from the champion, compare, promote through gates.

1. The data: a dataset version of NAME (``mlsel feedback import`` makes them; the latest
   by default), or the champion's own dataset when there is none.
2. The challenger: a search on that data, warm-started from the champion's config (tried
   first), then the ranker's picks, inside the budget. Its kept linear probe is not refitted
   on train + val: the validation split is the held-out set below, and stays held out.
3. The comparison: champion and challenger predict the same fixed held-out set, the
   version's validation split (the champion's validation split plus the held-out 20 % of
   every feedback batch), never the images either was trained on.
4. The gates (:class:`~mlsel.metalearn._compare.Gates`, in the store's settings): macro F1
   gain, the largest drop of a class's recall, and the latency ratio. All pass: the
   challenger becomes ``NAME@champion`` (``--dry-run``: it does not). Either way it is
   ``NAME@challenger``, and ``<challenger run>/comparison/`` holds the report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.experiment_store import CHAMPION
from mlsel.kernel.errors import ConfigError
from mlsel.kernel.home import Home
from mlsel.metalearn._compare import (
    GateCheck,
    Gates,
    LatencyFn,
    ModelScore,
    check_gates,
    measure_latencies,
    score_model,
)

if TYPE_CHECKING:
    from mlsel.experiment_store import ModelVersion, Store
    from mlsel.kernel.dataset import Dataset
    from mlsel.metalearn.search import SearchReport, SearchSettings

__all__ = ["CHALLENGER", "Gates", "RetrainReport", "held_out_images", "retrain"]

CHALLENGER = "challenger"
RETRAINED_BY = "mlsel retrain"
COMPARISON_DIR = "comparison"


@dataclass(frozen=True)
class RetrainReport:
    """What a retrain did and decided, in figures and words."""

    name: str
    data: str
    champion: ModelScore
    challenger: ModelScore | None
    checks: list[GateCheck]
    promoted: bool
    dry_run: bool
    decision: str
    report_dir: Path | None = None
    search: str | None = None
    challenger_ref: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "data": self.data,
            "promoted": self.promoted,
            "dry_run": self.dry_run,
            "decision": self.decision,
            "champion": self.champion.to_dict(),
            "challenger": None if self.challenger is None else self.challenger.to_dict(),
            "gates": [check.to_dict() for check in self.checks],
            "report_dir": None if self.report_dir is None else str(self.report_dir),
            "search": self.search,
            "challenger_ref": self.challenger_ref,
            "notes": list(self.notes),
        }


def _dataset_path(store: Store, fingerprint: str) -> str | None:
    frame = store.datasets_frame()
    for known, path in zip(frame["fingerprint"], frame["path"], strict=True):
        if known == fingerprint and path:
            return str(path)
    return None


def _training_data(
    store: Store, name: str, champion: ModelVersion, data: str | None
) -> tuple[Path, str, str | None]:
    """The folder to train the challenger on, its name in words, and its version ref."""
    if data is not None and os.path.isdir(data):
        return Path(data), data, None
    version = store.registry.dataset_version(name, data or "latest")
    if version is not None:
        return Path(version.path), version.ref, version.ref
    if data is not None:
        known = ", ".join(v.ref for v in store.registry.dataset_versions(name)) or "none yet"
        raise ConfigError(
            f"{data!r} is neither a dataset folder nor a dataset version of {name} (versions: "
            f"{known}). `mlsel feedback import {name} DIR` makes one."
        )
    path = _dataset_path(store, champion.dataset)
    if path is None or not os.path.isdir(path):
        raise ConfigError(
            f"The store keeps no readable folder of {champion.ref}'s dataset: pass --data "
            "PATH, or import labelled feedback first (`mlsel feedback import`)."
        )
    return Path(path), f"the champion's dataset ({path})", None


def held_out_images(dataset: Dataset) -> list[tuple[Path, str]]:
    """The fixed held-out set of a retrain: the dataset's validation split."""
    return [(Path(item.path), str(item.label)) for item in dataset.split("val")]


def _run_dir(store: Store, home: Home, run_id: str) -> Path:
    record = store.get_run(run_id)
    folder = Path(record.result.artifact_dir) if record.result.artifact_dir else home.run(run_id)
    return folder if folder.is_dir() else home.run(run_id)


def _search(
    data: Path,
    champion_config: Any,
    settings: SearchSettings,
    home: Path,
    on_event: Any,
    started: float | None,
) -> SearchReport:
    from mlsel.metalearn.search import run_search

    settings = replace(
        settings, warm_configs=(champion_config,), final_fit=False, output=None, refit=False
    )
    return run_search(data, settings, home=home, on_event=on_event, started=started)


def retrain(
    name: str,
    settings: SearchSettings,
    *,
    home: str | os.PathLike[str] | None = None,
    data: str | None = None,
    dry_run: bool = False,
    latency: LatencyFn | None = None,
    on_event: Any = None,
    started: float | None = None,
) -> RetrainReport:
    """Train a challenger for ``name``'s champion and promote it when every gate passes.

    Args:
        name: the registered model.
        settings: how the challenger's search runs (its budget, devices, trials, ...).
        home: the mlsel home.
        data: a dataset version (``v2``, ``2``, ``latest``) or a dataset folder.
        dry_run: decide, report and register the challenger, but do not promote it.
        latency: milliseconds per image of a model folder (tests inject it).
        on_event: the search's live-view hook.
        started: when the command started (the budget counts from it).

    Raises:
        ConfigError: no such model or data; no challenger finished with a score.
    """
    from mlsel.experiment_store import Store
    from mlsel.metalearn._retrain_report import write_report
    from mlsel.profilers import read_dataset

    where = Home.resolve(home)
    store = Store.open(where.root)
    champion = store.registry.get(name, CHAMPION)
    folder, data_words, data_ref = _training_data(store, name, champion, data)
    dataset = read_dataset(folder)
    images = held_out_images(dataset)
    if not images:
        raise ConfigError(f"{data_words} has no validation split to compare the models on.")
    champion_record = store.get_run(champion.run_id)
    report = _search(folder, champion_record.config, settings, where.root, on_event, started)
    notes = list(report.notes)
    if report.best is None or not report.best.run_id:
        raise ConfigError(
            f"No challenger finished with a score in the budget on {data_words}; nothing to "
            "compare. Give it a longer --budget."
        )
    challenger_run = report.best.run_id
    champion_dir = _run_dir(store, where, champion.run_id)
    challenger_dir = _run_dir(store, where, challenger_run)
    same = challenger_run == champion.run_id
    if latency is not None:
        latencies = [latency(champion_dir), latency(challenger_dir)]
    else:
        latencies = measure_latencies([champion_dir, challenger_dir], [p for p, _ in images])
    champion_score = score_model(
        champion.ref, champion.run_id, champion_dir, images, latency_ms=latencies[0]
    )
    challenger_score = score_model(
        f"run {challenger_run}", challenger_run, challenger_dir, images, latency_ms=latencies[1]
    )
    gates = Gates.load(store)
    checks = check_gates(champion_score, challenger_score, gates)
    passed = all(check.passed for check in checks) and not same
    failed = [check for check in checks if not check.passed]
    evaluation = {
        "macro_f1": challenger_score.macro_f1,
        "held_out": len(images),
        "data": data_words,
        "champion": champion.ref,
        "champion_macro_f1": champion_score.macro_f1,
        "gates": gates.to_dict(),
        "checks": [check.to_dict() for check in checks],
    }
    challenger_ref = None
    if not same:
        version = store.registry.promote(
            name,
            challenger_run,
            alias=CHALLENGER,
            by=RETRAINED_BY,
            evaluation=evaluation,
            dataset_version=data_ref,
            parent=champion.version,
        )
        challenger_ref = version.ref
        challenger_score = replace(challenger_score, ref=version.ref)
    promoted = passed and not dry_run
    if promoted and challenger_ref is not None:
        store.registry.promote(name, challenger_run, alias=CHAMPION, by=RETRAINED_BY)
    decision = _decision(name, champion, challenger_ref, same, failed, promoted, dry_run, passed)
    result = RetrainReport(
        name=name,
        data=data_words,
        champion=champion_score,
        challenger=challenger_score,
        checks=checks,
        promoted=promoted,
        dry_run=dry_run,
        decision=decision,
        search=report.name,
        challenger_ref=challenger_ref,
        notes=notes,
    )
    report_dir = write_report(result, challenger_dir / COMPARISON_DIR)
    return replace(result, report_dir=report_dir)


def _decision(
    name: str,
    champion: ModelVersion,
    challenger_ref: str | None,
    same: bool,
    failed: list[GateCheck],
    promoted: bool,
    dry_run: bool,
    passed: bool,
) -> str:
    if same:
        return (
            f"kept {champion.ref}: the search's best model is the champion's own run, so there "
            "is no challenger to promote"
        )
    if failed:
        reasons = "; ".join(f"{check.gate}: {check.detail}" for check in failed)
        return f"refused {challenger_ref}, {name}@champion stays {champion.ref}. Failed {reasons}"
    if dry_run and passed:
        return f"{challenger_ref} passes every gate; --dry-run: {champion.ref} stays champion"
    if promoted:
        return (
            f"promoted {challenger_ref} to {name}@champion (was {champion.ref}): every gate passed"
        )
    return f"kept {champion.ref}"
