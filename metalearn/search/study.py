"""The Optuna side of a search: its folder, storage, sampler, pruner and warm start.

Each search keeps its study in ``$MLSEL_HOME/searches/<fingerprint>-<name>/journal.log``
(Optuna's ``JournalStorage`` over a file: process-safe, so every worker process opens
the same study and asks for its own trials). ``--resume`` reopens that file; trials a
killed process left running are closed as failed and their parameters enqueued again,
finished trials are never repeated.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.errors import ConfigError, invalid_parameter
from mlsel.kernel.home import Home

if TYPE_CHECKING:
    import optuna

    from mlsel.kernel.records import Config

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "STUDY_NAME",
    "close_orphans",
    "enqueue_warm_start",
    "latest_search",
    "make_pruner",
    "make_sampler",
    "mark_trial",
    "open_study",
    "search_dir",
    "trial_attrs",
    "trial_status",
]

logger = logging.getLogger(__name__)

SAMPLERS: tuple[str, ...] = ("tpe", "ga", "random")
PRUNERS: tuple[str, ...] = ("hyperband", "halving", "none")
STUDY_NAME = "mlsel"
JOURNAL = "journal.log"
META = "search.json"
_MARK = "trial_status."  # study user attr prefix of statuses set from outside a worker


def search_dir(home: Path, fingerprint: str, name: str) -> Path:
    """Folder of the search ``name`` on the dataset ``fingerprint``."""
    return Home(Path(home)).search(fingerprint, name)


def latest_search(home: Path, fingerprint: str) -> str | None:
    """Name of the most recently started search on this dataset, or ``None``."""
    root = Home(Path(home)).searches
    found = sorted(
        (p for p in root.glob(f"{fingerprint[:12]}-*") if (p / JOURNAL).is_file()),
        key=lambda p: (p / JOURNAL).stat().st_mtime,
    )
    return found[-1].name[len(fingerprint[:12]) + 1 :] if found else None


def make_sampler(kind: str, *, seed: int | None, n_startup_trials: int = 5) -> Any:
    """An Optuna sampler: ``tpe`` (multivariate, constant liar), ``ga`` (NSGA-II), ``random``.

    Raises:
        ConfigError: ``kind`` is not one of :data:`SAMPLERS`.
    """
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(
            multivariate=True,
            constant_liar=True,  # running trials on other GPUs count as mediocre
            n_startup_trials=n_startup_trials,
            seed=seed,
        )
    if kind == "ga":
        return optuna.samplers.NSGAIISampler(population_size=8, seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise invalid_parameter("sampler", "run", f"one of {', '.join(SAMPLERS)}", kind)


def make_pruner(kind: str) -> Any:
    """An Optuna pruner over epochs: ``hyperband``, ``halving`` (successive halving), ``none``.

    Raises:
        ConfigError: ``kind`` is not one of :data:`PRUNERS`.
    """
    import optuna

    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise invalid_parameter("pruner", "run", f"one of {', '.join(PRUNERS)}", kind)


def _storage(folder: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(folder / JOURNAL)
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def open_study(
    folder: Path,
    *,
    sampler: Any = None,
    pruner: Any = None,
    create: bool = False,
    meta: dict[str, Any] | None = None,
) -> optuna.Study:
    """Open (or with ``create``, create) the study kept in ``folder``.

    Raises:
        ConfigError: ``create`` and a study already exists there, or not ``create`` and
            none does.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exists = (folder / JOURNAL).is_file() and (folder / JOURNAL).stat().st_size > 0
    if create and exists:
        raise ConfigError(
            f"A search already lives in {folder}. Pass --resume to continue it, or choose "
            "another --name."
        )
    if not create and not exists:
        raise ConfigError(
            f"There is no search to resume in {folder}. Run without --resume to start one."
        )
    folder.mkdir(parents=True, exist_ok=True)
    if create:
        (folder / META).write_text(json.dumps({**(meta or {}), "created": time.time()}, indent=2))
        return optuna.create_study(
            study_name=STUDY_NAME,
            storage=_storage(folder),
            sampler=sampler,
            pruner=pruner,
            direction="maximize",
        )
    return optuna.load_study(
        study_name=STUDY_NAME, storage=_storage(folder), sampler=sampler, pruner=pruner
    )


def mark_trial(
    study: optuna.Study,
    number: int,
    status: str,
    *,
    run_id: str | None = None,
    score: float | None = None,
) -> None:
    """Record the end of a trial that the search closed from outside its worker.

    A worker records each trial's status, run id and score in the trial's user attrs. A
    trial whose worker was terminated, or that a killed search left running, cannot be
    given user attrs by another process through Optuna's public API, so they go in the
    study's user attrs instead; :func:`trial_attrs` reads both.
    """
    mark = {"status": status, "run_id": run_id, "score": score}
    study.set_user_attr(f"{_MARK}{number}", mark)


def trial_attrs(study_attrs: dict[str, Any], trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trial's user attrs, with what the search marked from outside (``study_attrs``:
    the study's ``user_attrs``)."""
    attrs = dict(trial.user_attrs)
    mark = study_attrs.get(f"{_MARK}{trial.number}")
    if isinstance(mark, dict):
        attrs.update({k: v for k, v in mark.items() if v is not None})
    return attrs


def trial_status(study_attrs: dict[str, Any], trial: optuna.trial.FrozenTrial) -> str:
    """The mlsel status of ``trial`` (``study_attrs``: the study's ``user_attrs``)."""
    return str(trial_attrs(study_attrs, trial).get("status") or trial.state.name.lower())


def close_orphans(study: optuna.Study) -> int:
    """Fail the trials a killed search left running and enqueue their configs again.

    Returns:
        How many trials were re-enqueued.
    """
    from optuna.trial import TrialState

    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        mark_trial(study, trial.number, "interrupted")
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        attrs: dict[str, Any] = {"retry_of": trial.number}
        if "config" in trial.user_attrs:
            attrs["config"] = trial.user_attrs["config"]
        study.enqueue_trial(dict(trial.params), user_attrs=attrs)
    if orphans:
        logger.info("re-enqueued %d trial(s) an interrupted search left running", len(orphans))
    return len(orphans)


def enqueue_warm_start(study: optuna.Study, configs: Sequence[Config]) -> int:
    """Enqueue the suggestions, best first, so that they are the study's first trials.

    Each carries its config in its user attrs, so the worker trains exactly it.

    Returns:
        How many were enqueued.
    """
    for rank, config in enumerate(configs, start=1):
        study.enqueue_trial(
            config.to_params(),
            user_attrs={"warm_start": True, "suggestion_rank": rank, "config": config.to_dict()},
        )
    return len(configs)
