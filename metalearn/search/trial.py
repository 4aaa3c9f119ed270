"""One trial inside a worker: sample a config, check it fits, train it, tell Optuna.

Per epoch the trainer calls back; the callback reports the score to Optuna (whose
pruner may stop a poor trial: ``StopRun("pruned")``) and stops the trial when the
budget is spent or the search was stopped (``StopRun("timeout")``). The trainer logs
the run and its curve to the store either way.

Only Optuna's public API is used: an enqueued trial (a warm-start pick, a retry) carries
its config in the user attrs set at enqueue, and every trial ends with its ``status``,
``run_id`` and score in its user attrs.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlsel.kernel.errors import MlselError, StopRun
from mlsel.kernel.records import Config, EpochRecord, RunResult
from mlsel.metalearn.search.events import EpochEnded, TrialEnded, TrialSkipped, TrialStarted

if TYPE_CHECKING:
    import optuna

    from mlsel.metalearn.cost import CostEstimate
    from mlsel.metalearn.search.workers import EventSink, StopSignals, WorkerJob

__all__ = ["TrialLoop"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Plan:
    """A trial's config after the budget check, and what the cost model predicts for it."""

    config: Config
    predicted: float | None  # seconds, corrected by this worker's observed slowdown
    modelled: float | None  # the cost model's own figure
    trimmed_from: int | None = None  # epochs before they were trimmed to fit


class TrialLoop:
    """Runs a worker's trials one after another; the study and store are opened once.

    Args:
        job: the worker's :class:`~mlsel.metalearn.search.workers.WorkerJob`.
        events: where events go.
        stop: an event; when set, a running trial stops at its next epoch.
    """

    def __init__(self, job: WorkerJob, events: EventSink, stop: StopSignals) -> None:
        from mlsel.experiment_store import Store
        from mlsel.metalearn.search.study import make_pruner, make_sampler, open_study
        from mlsel.metalearn.space import CandidateSpace

        self.job, self.events, self.stop = job, events, stop
        self.space = job.space or CandidateSpace()
        seed = None if job.seed is None else job.seed + 1000 * job.slot.index
        self.study = open_study(
            Path(job.folder),
            sampler=make_sampler(job.sampler, seed=seed),
            pruner=make_pruner(job.pruner),
        )
        self.store = Store.open(job.home)
        self.last_result: RunResult | None = None
        # observed / predicted wall time of this worker's completed runs: the cost model
        # learnt on other runs, and this machine may be busier or faster than it thinks
        self.slowdowns: list[float] = []

    def _config(self, trial: optuna.Trial) -> Config:
        """The trial's config; an enqueued trial trains exactly what was enqueued."""
        task, fixed = self.job.dataset.task, self.job.fixed
        wanted = trial.user_attrs.get("config")
        if wanted is None:
            if self.job.shortlist:
                return self._from_shortlist(trial)
            return self.space.sample_config(trial, task, fixed=fixed)
        config = Config.from_dict(wanted)
        if self.job.shortlist:  # an enqueued pick that is on the shortlist counts as tried
            trial.set_user_attr("entry", config.key())
            return config
        try:  # suggest the enqueued values too, so that the sampler learns from them
            sampled = self.space.sample_config(trial, task, fixed=fixed)
        except ValueError:  # an enqueued value outside the space's choices
            return config
        if sampled.key() != config.key():
            logger.warning(
                "trial %d: the space changed the enqueued config; training it as enqueued",
                trial.number,
            )
        return config

    def _from_shortlist(self, trial: optuna.Trial) -> Config:
        """Draw from the ranked shortlist what fits the time left.

        Each entry that fits is tried once, in the ranker's order, cheap ones first (those
        predicted to take at most a quarter of the time left; a frozen backbone whose
        embeddings are cached costs next to nothing). When no cheap entry is left, or a
        third of the budget is, ensembles of the linear probes trained so far come first
        (:meth:`_ensembles`). Once every fitting entry has been tried, the best entries so
        far are trained again with their learning rate, regularisation and seed moved
        around them (sampled by Optuna, so that it learns which moves pay). When nothing
        fits, the cheapest entry is trained anyway: a short budget still trains something.
        """
        left = self.job.budget.left()
        costs = {c.key(): self._cost(c) for c in self.job.shortlist}
        fits = [c for c in self.job.shortlist if costs[c.key()] <= left]
        if not fits:
            return min(self.job.shortlist, key=lambda c: costs[c.key()])
        tried = self._tried()
        untried = [c for c in fits if c.key() not in tried]
        cheap = [c for c in untried if costs[c.key()] <= 0.25 * left]
        if not cheap or left < self.job.budget.total_s / 3:
            for ensemble in self._ensembles():
                if ensemble.key() not in tried:
                    trial.set_user_attr("entry", ensemble.key())
                    return ensemble
        if untried:
            entry = (cheap or untried)[0]
            trial.set_user_attr("entry", entry.key())
            return entry
        ranked = sorted(fits, key=lambda c: -tried[c.key()])
        entry = ranked[trial.number % min(3, len(ranked))]
        trial.set_user_attr("entry", entry.key())
        lr = entry.lr * 10 ** trial.suggest_float("lr_shift", -1.0, 1.0)
        wd = entry.weight_decay * 10 ** trial.suggest_float("weight_decay_shift", -1.5, 1.5)
        return entry.with_(
            lr=min(lr, 1.0),
            weight_decay=min(wd, 1.0),
            seed=trial.suggest_int("seed", *self.space.seed),
        )

    def nothing_fits(self) -> bool:
        """Whether a trial has trained and no shortlist entry fits in the time left: then
        this worker is done (without a shortlist, the sampler keeps drawing)."""
        if not self.job.shortlist or not self._trained_any():
            return False
        left = self.job.budget.left()
        return all(self._cost(c) > left for c in self.job.shortlist)

    def _trained_any(self, but: int = -1) -> bool:
        """Whether a trial of this search other than number ``but`` has trained (finished
        with a score, stopped, or is training now)."""
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        return any(
            t.user_attrs.get("status") != "skipped"
            for t in self.study.get_trials(deepcopy=False, states=states)
            if t.number != but
        )

    def _ensembles(self) -> list[Config]:
        """Ensembles of the linear probes trained so far: the best probe of each backbone
        (lowest validation loss), the 2, 3, ... best backbones together, each probe with
        its own regularisation (see :func:`mlsel.trainers.frozen.fit_linear`)."""
        from optuna.trial import TrialState

        from mlsel.kernel.catalogue import CONCAT, ENSEMBLE_KEY, concat

        best: dict[str, tuple[float, Config]] = {}
        for past in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            wanted, run_id = past.user_attrs.get("config"), past.user_attrs.get("run_id")
            if wanted is None or run_id is None:
                continue
            config = Config.from_dict(wanted)
            if config.finetune != "linear" or CONCAT in config.arch or config.extra:
                continue
            losses = [e.val_loss for e in self.store.epochs(run_id) if e.val_loss is not None]
            if losses and (config.arch not in best or losses[-1] < best[config.arch][0]):
                best[config.arch] = (losses[-1], config)
        if len(best) < 2:
            return []
        ranked = [config for _, config in sorted(best.values(), key=lambda item: item[0])]
        size = ranked[0].image_size
        ranked = [c for c in ranked if c.image_size == size and c.augment == ranked[0].augment]
        return [
            ranked[0].with_(
                arch=concat([c.arch for c in ranked[:k]]),
                extra=((ENSEMBLE_KEY, ",".join(f"{c.weight_decay:.6g}" for c in ranked[:k])),),
            )
            for k in range(2, len(ranked) + 1)
        ]

    def _tried(self) -> dict[str, float]:
        """Shortlist entries that trials have drawn so far, with their best score (-1 for
        none yet)."""
        out: dict[str, float] = {}
        for past in self.study.get_trials(deepcopy=False):
            key = past.user_attrs.get("entry")
            if key is None:
                continue
            score = past.value if past.value is not None else past.user_attrs.get("score")
            out[key] = max(out.get(key, -1.0), float(score) if score is not None else -1.0)
        return out

    def _cost(self, config: Config) -> float:
        """Predicted seconds of ``config`` here (0 when there is no cost model)."""
        estimate = self._estimate(config)
        return 0.0 if estimate is None else estimate.total_seconds * self._slowdown()

    def _slowdown(self) -> float:
        return statistics.median(self.slowdowns) if self.slowdowns else 1.0

    def _estimate(self, config: Config) -> CostEstimate | None:
        model, profile = self.job.cost_model, self.job.profile
        if model is None or profile is None:
            return None
        try:
            cached = self.job.trainer.cached_share(self.job.dataset, config)
            return model.predict(config, profile, cached=cached)
        except (MlselError, ValueError, KeyError) as exc:
            logger.warning("cost model could not predict %s: %s", config.arch, exc)
            return None

    def _plan(self, config: Config) -> _Plan:
        """Trim the epochs of a config predicted too long for the time left, if allowed."""
        estimate = self._estimate(config)
        slowdown = self._slowdown()
        modelled = None if estimate is None else estimate.total_seconds
        predicted = None if modelled is None else modelled * slowdown
        left = self.job.budget.left()
        trimmable = "epochs" not in self.job.fixed and config.epochs > 1  # not a user choice
        if estimate is None or not modelled or predicted is None or predicted <= left:
            return _Plan(config, predicted, modelled)
        if not trimmable:
            return _Plan(config, predicted, modelled)
        # epochs are a budget knob: a config that fits with fewer is trained so
        per_epoch = (modelled - estimate.fixed_seconds) / config.epochs
        epochs = int((left / slowdown - estimate.fixed_seconds) / per_epoch) if per_epoch else 0
        if epochs < 1:
            return _Plan(config, predicted, modelled)
        trimmed = estimate.fixed_seconds + per_epoch * epochs
        return _Plan(config.with_(epochs=epochs), trimmed * slowdown, trimmed, config.epochs)

    def run_one(self) -> bool:
        """Ask, train and tell one trial. Returns False when the trial was skipped."""
        from optuna.trial import TrialState

        trial = self.study.ask()
        plan = self._plan(self._config(trial))
        config = plan.config
        # a short budget trains at least one trial: the deadline stops it, with a score
        if (
            plan.predicted is not None
            and not self.job.budget.fits(plan.predicted)
            and self._trained_any(but=trial.number)
        ):
            left = self.job.budget.left()
            trial.set_user_attr("status", "skipped")
            trial.set_user_attr("skip_reason", f"predicted {plan.predicted:.0f} s > {left:.0f} s")
            self.study.tell(trial, state=TrialState.FAIL)
            self.events.emit(
                TrialSkipped,
                trial=trial.number,
                arch=config.arch,
                predicted_seconds=plan.predicted,
                left=left,
            )
            return False
        warm = bool(trial.user_attrs.get("warm_start"))
        trial.set_user_attr("worker", self.job.slot.label)
        trial.set_user_attr("config", config.to_dict())
        if plan.trimmed_from is not None:
            trial.set_user_attr("epochs_trimmed_from", plan.trimmed_from)
        if plan.predicted is not None:
            trial.set_user_attr("predicted_seconds", plan.predicted)
        self.events.emit(
            TrialStarted,
            trial=trial.number,
            config=config,
            warm=warm,
            predicted_seconds=plan.predicted,
        )
        run_id, result = self._train(trial, config)
        self._tell(trial, run_id, result)
        self.last_result = result
        if result.status == "completed" and result.wall_seconds and plan.modelled:
            self.slowdowns.append(float(result.wall_seconds) / plan.modelled)
        self.events.emit(
            TrialEnded,
            trial=trial.number,
            config=config,
            status=result.status,
            score=result.score,
            run_id=run_id,
            seconds=result.wall_seconds,
            warm=warm,
            error=result.error,
        )
        return True

    def _train(self, trial: optuna.Trial, config: Config) -> tuple[str | None, RunResult]:
        steps = 0

        def on_epoch(record: EpochRecord) -> None:
            nonlocal steps
            steps += 1
            self.events.emit(
                EpochEnded,
                trial=trial.number,
                epoch=steps,
                epochs=config.epochs,
                score=record.score,
                seconds=record.seconds,
            )
            if record.score is not None:
                trial.report(float(record.score), steps)
            if steps >= config.epochs:  # a finished run is not stopped, even if late
                return
            if record.score is not None and trial.should_prune():
                raise StopRun("pruned")
            if self.stop.interrupted():
                raise StopRun("interrupted")
            # stop once the budget is spent, or before an epoch as long as this one that
            # would end past it
            late = record.seconds is not None and record.seconds > self.job.budget.left()
            if self.stop.is_set() or self.job.budget.expired() or late:
                raise StopRun("timeout")

        try:
            return self.job.trainer.train(
                self.job.dataset,
                config,
                store=self.store,
                device=self.job.slot.device,
                on_epoch=on_epoch,
            )
        except MlselError as exc:  # could not start: nothing was logged
            return None, RunResult(status="failed", error=str(exc))
        except Exception as exc:  # a trial's crash must not end the search
            logger.exception("trial %d crashed", trial.number)
            return None, RunResult(status="failed", error=f"{type(exc).__name__}: {exc}")

    def _tell(self, trial: optuna.Trial, run_id: str | None, result: RunResult) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("status", result.status)
        trial.set_user_attr("run_id", run_id)
        trial.set_user_attr("wall_seconds", result.wall_seconds)
        if result.error:
            trial.set_user_attr("error", result.error[:500])
        if result.status == "completed" and result.score is not None:
            self.study.tell(trial, float(result.score))
        elif result.status in ("pruned", "timeout", "interrupted"):
            if result.score is not None:
                trial.set_user_attr("score", float(result.score))
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, state=TrialState.FAIL)
