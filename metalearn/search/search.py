"""``run_search``: a warm-started Optuna search over the candidate space inside a budget.

The main process reads the dataset once, opens the study, asks the ranker for its top
picks and enqueues them (so they are the first trials), fits the cost model, then starts
one worker process per device slot with everything it needs in its job. While they
train it folds their events into a :class:`SearchProgress` (handed to ``on_event`` for a
live view), stops them when the target is reached or the budget is spent, and
terminates any that do not stop in time. Then it builds the leaderboard, exports the
best model, and refits the ranker when enough new runs have been logged since the last
refit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsel.kernel.dataset import Dataset
from mlsel.kernel.errors import (
    ConfigError,
    DatasetError,
    MlselError,
    RankerError,
    invalid_parameter,
)
from mlsel.kernel.records import Config, DatasetProfile
from mlsel.metalearn.search import study as study_module
from mlsel.metalearn.search.budget import Budget, Clock
from mlsel.metalearn.search.devices import DeviceSlot, parse_gpus
from mlsel.metalearn.search.leaderboard import (
    LeaderboardRow,
    best_row,
    export_best,
    fit_final,
    leaderboard,
    validation_losses,
)
from mlsel.metalearn.search.pool import EventHook, KilledTrial
from mlsel.metalearn.search.progress import SearchProgress
from mlsel.metalearn.search.workers import WorkerJob

if TYPE_CHECKING:
    import optuna

    from mlsel.experiment_store import Store
    from mlsel.metalearn.cost import CostModel
    from mlsel.metalearn.search.trainer import Trainer
    from mlsel.metalearn.space import CandidateSpace

__all__ = ["SearchReport", "SearchSettings", "run_search"]

logger = logging.getLogger(__name__)

DEFAULT_REFIT_EVERY = 20
# Candidates the search draws its trials from, best ranked first.
SHORTLIST = 60
#: The most epochs a detection pick grows to when the budget has room for more.
MAX_DETECT_EPOCHS = 60


@dataclass(frozen=True)
class SearchSettings:
    """How ``mlsel run`` searches. Validated once, in :func:`run_search`.

    Attributes:
        budget_s: wall-clock budget of the whole command, in seconds.
        gpus: ``all``, a count, indices (``0,2``), ``cpu`` or ``cpu:N``.
        sampler / pruner: see :data:`~mlsel.metalearn.search.study.SAMPLERS`, ``PRUNERS``.
        warm_start / top_k: enqueue the ranker's top ``top_k`` suggestions first.
        target: stop once a trial completes with at least this score.
        max_trials: trials the study may run in all (a resumed search counts earlier ones).
        resume / name: continue the search ``name`` (default: the latest on this dataset).
        seed: sampler seed (worker i uses seed + 1000 i).
        output: where the best model is copied (``None``: not copied).
        refit: refit the ranker afterwards when ``refit_every`` new runs were logged.
        space / fixed: the candidate space and params held constant (``to_params`` names).
        slots: device slots, overriding ``gpus`` (tests).
        trainer: what trains the trials (default :class:`mlsel.trainers.CachedTrainer`).
        clock: the budget's clock (tests inject one they drive).
        skip_bad_files: leave out images that cannot be decoded (else they stop the search
            before it starts, with the files named).
        warm_configs: configs tried first, before the ranker's picks (a retrain's champion).
        final_fit: refit a kept linear probe on train + val; off when the validation split
            must stay held out (a retrain compares models on it).
    """

    budget_s: float
    gpus: str = "all"
    sampler: str = "tpe"
    pruner: str = "hyperband"
    warm_start: bool = True
    top_k: int = 3
    target: float | None = None
    max_trials: int | None = None
    resume: bool = False
    name: str | None = None
    seed: int | None = None
    task: str | None = None
    output: Path | None = Path("mlsel-best")
    refit: bool = True
    space: CandidateSpace | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    slots: tuple[DeviceSlot, ...] | None = None
    trainer: Trainer | None = None
    clock: Clock = time.time
    skip_bad_files: bool = False
    warm_configs: tuple[Config, ...] = ()
    final_fit: bool = True


@dataclass(frozen=True)
class SearchReport:
    """What a search did, for the leaderboard, ``--json`` and the benchmark."""

    name: str
    folder: Path
    dataset: str
    dataset_name: str
    devices: list[str]
    device_note: str
    budget_s: float
    elapsed_s: float
    stop_reason: str
    progress: SearchProgress
    rows: list[LeaderboardRow]
    best: LeaderboardRow | None
    output: Path | None
    warm_start: list[dict[str, Any]]
    refit: str | None = None
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        p = self.progress
        return {
            "name": self.name,
            "folder": str(self.folder),
            "dataset": self.dataset,
            "dataset_name": self.dataset_name,
            "devices": self.devices,
            "budget_s": self.budget_s,
            "elapsed_s": round(self.elapsed_s, 2),
            "stop_reason": self.stop_reason,
            "trials": {
                "started": p.started,
                "finished": p.finished,
                "skipped": p.skipped,
                **dict(p.statuses),
            },
            "best": self.best.to_dict() if self.best else None,
            "output": str(self.output) if self.output else None,
            "warm_start": self.warm_start,
            "leaderboard": [r.to_dict() for r in self.rows],
            "history": p.history,
            "refit": self.refit,
            "notes": self.notes + [self.device_note],
            "interrupted": self.interrupted,
        }


def _validate(settings: SearchSettings) -> None:
    if settings.sampler not in study_module.SAMPLERS:
        study_module.make_sampler(settings.sampler, seed=None)  # raises the ConfigError
    if settings.pruner not in study_module.PRUNERS:
        study_module.make_pruner(settings.pruner)
    if settings.max_trials is not None and settings.max_trials < 1:
        raise invalid_parameter("max_trials", "run", "an int in [1, inf)", settings.max_trials)
    if settings.top_k < 0:
        raise invalid_parameter("top_k", "run", "an int in [0, inf)", settings.top_k)


def _suggestions(
    dataset: Dataset, settings: SearchSettings, store: Store, home: Path, budget: Budget, gpu: bool
) -> tuple[DatasetProfile, list[Config], list[Config]]:
    """The dataset's profile, the ranker's top configs fitted to the search's space (the
    warm start), and the shortlist trials are drawn from: every candidate in the ranker's
    order, one per architecture in turn (empty when the space is narrowed or params are
    fixed: then the sampler draws from the space)."""
    try:
        from mlsel.metalearn._suggest import suggest
    except ImportError as exc:
        raise RankerError(f"warm start unavailable ({exc})") from exc
    narrowed = settings.space is not None or bool(settings.fixed)
    # a narrowed space keeps only some of the ranker's picks: ask for more of them
    top = SHORTLIST if narrowed else max(settings.top_k * 3, SHORTLIST)
    # no budget here: a pick too long for the budget is trimmed to fewer epochs below
    report = suggest(dataset, store=store, home=home, top=top, device="cuda" if gpu else "cpu")
    allowed = set(settings.space.models(dataset.task)) if settings.space is not None else None
    # each warm-start pick gets an equal share of the budget, with one share left for the
    # sampler: a pick predicted to take longer is trimmed to the epochs that fit its share.
    # A detection trial takes minutes on a CPU, so shares would leave every pick a few
    # epochs: there the ranker's first pick gets the whole budget.
    detect = dataset.task == "detect"
    picks = min(settings.top_k, 1) if detect else settings.top_k
    share = budget.left() / (max(picks, 1) + (0 if detect else 1))
    configs: list[Config] = []
    for suggestion in report.suggestions:
        config = suggestion.config
        if allowed is not None and f"{config.backend}/{config.arch}" not in allowed:
            continue
        if settings.fixed:
            config = Config.from_params({**config.to_params(), **settings.fixed})
        elif suggestion.predicted_seconds and suggestion.predicted_seconds > share:
            epochs = int(share / (suggestion.predicted_seconds / max(config.epochs, 1)))
            if epochs < 1:  # not even one epoch fits its share
                continue
            config = config.with_(epochs=min(config.epochs, epochs))
        elif detect and suggestion.predicted_seconds:
            # the one detection pick trains for the whole budget: more epochs, up to what
            # the cost model says fits (the trial stops before an epoch that would not)
            epochs = int(share / (suggestion.predicted_seconds / max(config.epochs, 1)))
            config = config.with_(epochs=min(max(config.epochs, epochs), MAX_DETECT_EPOCHS))
        if config.key() not in {c.key() for c in configs}:
            configs.append(config)
    shortlist = [] if narrowed else [s.config for s in report.suggestions]
    return report.profile, configs[:picks], shortlist


def _cost_model(store: Store, gpu: bool) -> CostModel | None:
    """The fitted cost model, or ``None`` (then no trial is skipped on prediction)."""
    try:
        from mlsel.metalearn.cost import CostModel

        return CostModel(device="cuda" if gpu else "cpu").fit(store.training_frame())
    except (ImportError, MlselError, ValueError) as exc:
        logger.warning("no cost model (%s): trials are not skipped on predicted time", exc)
        return None


def _finished_runs(study: optuna.Study) -> int:
    """Trials of the study that ran to an end (skipped ones do not count)."""
    from optuna.trial import TrialState

    done = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    )
    marks = study.user_attrs
    return sum(
        1 for t in done if study_module.trial_status(marks, t) not in ("skipped", "interrupted")
    )


def _open(settings: SearchSettings, home: Path, dataset: Dataset) -> tuple[str, Path, optuna.Study]:
    """Create the study, or reopen it with ``resume``; returns (name, folder, study)."""
    name = settings.name
    if settings.resume and name is None:
        name = study_module.latest_search(home, dataset.fingerprint)
        if name is None:
            raise ConfigError(
                f"There is no search on {dataset.name!r} to resume. Run without --resume "
                "to start one."
            )
    name = name or _new_name(home, dataset.fingerprint)
    folder = study_module.search_dir(home, dataset.fingerprint, name)
    meta = {
        "dataset": str(dataset.root),
        "fingerprint": dataset.fingerprint,
        "sampler": settings.sampler,
        "pruner": settings.pruner,
    }
    study = study_module.open_study(folder, create=not settings.resume, meta=meta)
    if settings.resume:
        study_module.close_orphans(study)
    return name, folder, study


def _without_bad_files(dataset: Dataset, settings: SearchSettings, notes: list[str]) -> Dataset:
    """Decode every image once before any trial: a file that cannot be decoded stops the
    search here, with the files named, or with ``skip_bad_files`` is left out (a note)."""
    from mlsel.profilers import bad_files_message, drop_items, verify_images

    bad = verify_images(dataset)
    if not bad:
        return dataset
    if not settings.skip_bad_files:
        raise DatasetError(bad_files_message(bad))
    notes.append(f"left out {len(bad)} image(s) that cannot be decoded (--skip-bad-files)")
    logger.warning(notes[-1])
    return drop_items(dataset, [path for path, _ in bad], "cannot be decoded")


def _new_name(home: Path, fingerprint: str) -> str:
    """A fresh search name, the start time; its folder is made at once, so that two
    searches started in the same second get two names."""
    base = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        try:
            study_module.search_dir(home, fingerprint, name).mkdir(parents=True)
        except FileExistsError:
            continue
        return name
    raise ConfigError(f"Too many searches started at {base}. Pass --name.")


def _jobs(
    settings: SearchSettings,
    slots: list[DeviceSlot],
    dataset: Dataset,
    profile: DatasetProfile | None,
    cost_model: CostModel | None,
    home: Path,
    folder: Path,
    budget: Budget,
) -> list[WorkerJob]:
    if settings.trainer is not None:
        trainer = settings.trainer
    else:
        from mlsel.trainers import CachedTrainer

        trainer = CachedTrainer()
    return [
        WorkerJob(
            slot=slot,
            dataset=dataset,
            profile=profile,
            cost_model=cost_model,
            home=str(home),
            folder=str(folder),
            sampler=settings.sampler,
            pruner=settings.pruner,
            budget=budget,
            trainer=trainer,
            seed=settings.seed,
            space=settings.space,
            fixed=dict(settings.fixed),
            target=settings.target,
        )
        for slot in slots
    ]


def run_search(
    dataset_path: str | Path,
    settings: SearchSettings,
    *,
    home: str | Path | None = None,
    started: float | None = None,
    on_event: EventHook | None = None,
) -> SearchReport:
    """Search for the best config of the dataset at ``dataset_path`` within the budget.

    Args:
        dataset_path: the dataset folder (any layout ``read_dataset`` knows).
        settings: how to search.
        home: ``$MLSEL_HOME`` (default: resolved as usual).
        started: the clock's time when the command started (the budget counts from it).
        on_event: called with the progress after each worker event (and each tick, with
            ``None``), for a live view.

    Raises:
        ConfigError: a setting is invalid, or the search to resume does not exist.
        DatasetError: the dataset cannot be read.
    """
    from mlsel.experiment_store import Store
    from mlsel.kernel.home import resolve_home
    from mlsel.metalearn.search.pool import WorkerPool
    from mlsel.profilers import read_dataset

    _validate(settings)
    budget = Budget.start(settings.budget_s, started, clock=settings.clock)
    home = resolve_home(home)
    notes: list[str] = []
    dataset = _without_bad_files(read_dataset(dataset_path, task=settings.task), settings, notes)
    slots, device_note = (list(settings.slots), "") if settings.slots else parse_gpus(settings.gpus)
    store = Store.open(home)
    name, folder, study = _open(settings, home, dataset)
    remaining = None
    if settings.max_trials is not None:
        remaining = max(0, settings.max_trials - _finished_runs(study))
    gpu = any(s.is_gpu for s in slots)
    profile: DatasetProfile | None
    shortlist: list[Config] = []
    try:
        profile, configs, shortlist = _suggestions(dataset, settings, store, home, budget, gpu)
    except RankerError as exc:
        profile, configs = store.get_profile(dataset.fingerprint), []
        notes.append(f"no suggestions, the search starts cold: {exc}")
        logger.warning(notes[-1])
    warm = list(settings.warm_configs) if not settings.resume else []
    picks = configs if settings.warm_start and not settings.resume else []
    warm += [c for c in picks if c.key() not in {w.key() for w in warm}]
    study_module.enqueue_warm_start(study, warm)
    jobs = _jobs(settings, slots, dataset, profile, _cost_model(store, gpu), home, folder, budget)
    jobs = [replace(job, shortlist=tuple(shortlist)) for job in jobs]
    pool = WorkerPool(jobs, budget, max_trials=remaining, target=settings.target)
    progress = SearchProgress(started_at=budget.started)
    progress.seed_best(leaderboard(study))  # a resumed search's earlier trials count
    pool.start()
    _close_killed(study, store, pool.run(progress, on_event))
    rows = leaderboard(study)
    best = best_row(
        rows, val_losses=validation_losses(store, rows), n_val=len(dataset.split("val"))
    )
    if best is not None and rows and best.trial != rows[0].trial:
        notes.append(
            f"kept trial {best.trial}: the lowest validation loss among the trials within one "
            f"standard error of the top score (trial {rows[0].trial})"
        )
    output = final = None
    if best is not None and settings.final_fit:
        final, note = fit_final(best, store, jobs[0].trainer, dataset, budget.wrap_up_left())
        notes += [note] if note else []
    if best is not None and settings.output is not None:
        output = export_best(best, store, settings.output, final)
    elif best is None:
        notes.append("no trial finished with a score: nothing to export.")
    refit_text = _maybe_refit(store, home) if settings.refit else None
    return SearchReport(
        name=name,
        folder=folder,
        dataset=dataset.fingerprint,
        dataset_name=dataset.name,
        devices=[s.label for s in slots],
        device_note=device_note,
        budget_s=budget.total_s,
        elapsed_s=budget.elapsed(),
        stop_reason=pool.stop_reason,
        progress=progress,
        rows=rows,
        best=best,
        output=output,
        warm_start=[c.to_dict() for c in warm],
        refit=refit_text,
        notes=notes,
        interrupted=pool.interrupted,
    )


def _close_killed(study: optuna.Study, store: Store, killed: list[KilledTrial]) -> None:
    """Close what terminated workers left open: their run in the store and their trial in
    the study, as ``timeout`` (the deadline) or ``interrupted`` (the user), with the best
    score the run logged."""
    from optuna.trial import TrialState

    for kill in killed:
        run_id, score = _close_run_of(store, kill)
        if kill.trial is None:
            continue
        study_module.mark_trial(study, kill.trial, kill.status, run_id=run_id, score=score)
        study.tell(kill.trial, state=TrialState.FAIL, skip_if_finished=True)


def _close_run_of(store: Store, kill: KilledTrial) -> tuple[str | None, float | None]:
    """Finish the run a terminated worker left ``running``; returns its id and score."""
    from mlsel.kernel.records import RunResult

    if kill.pid is None:
        return None, None
    rows = store.sql(
        "SELECT run_id FROM runs WHERE status = 'running' AND pid = ? ORDER BY started_at",
        [kill.pid],
    )
    run_id, score = None, None
    for run_id in rows["run_id"].to_list():
        curve = store.epochs(run_id)
        scores = [e.score for e in curve if e.score is not None]
        score = max(scores) if scores else None
        reason = "the deadline" if kill.status == "timeout" else "the user's interrupt"
        store.finish_run(
            run_id,
            RunResult(
                status=kill.status,
                score=score,
                error=f"its worker did not stop in time after {reason} and was terminated",
            ),
        )
    return run_id, score


def _maybe_refit(store: Store, home: Path) -> str | None:
    """Refit the ranker when ``refit_every`` (setting) runs were logged since the last."""
    every = int(store.get_setting("refit_every", DEFAULT_REFIT_EVERY))
    new_runs = store.runs_since_active_ranker()
    if every <= 0 or new_runs < every:  # 0: never
        return None
    try:
        from mlsel.metalearn._refit import refit

        report = refit(store, home=home)
    except (ImportError, MlselError) as exc:
        logger.warning("automatic refit failed: %s", exc)
        return f"refit failed: {exc}"
    state = "activated" if report.activated else "not activated"
    return f"ranker {report.version} refit on {report.rows} runs, {state}: {report.reason}"
