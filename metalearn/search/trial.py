"""One trial inside a worker: sample a config, check it fits, train it, tell Optuna.

Per epoch the trainer calls back; the callback reports the score to Optuna (whose
pruner may stop a poor trial: ``StopRun("pruned")``) and stops the trial when the
budget is spent or the search was stopped (``StopRun("timeout")``). The trainer logs
the run and its curve to the store either way.
"""

from __future__ import annotations

import importlib
import logging
import pickle
import statistics
from pathlib import Path
from typing import Any

from mlsel.experiment_store.errors import MlselError
from mlsel.experiment_store.records import Config, EpochRecord, RunResult

__all__ = ["SETUP_FILE", "TrialLoop"]

SETUP_FILE = "setup.pkl"

logger = logging.getLogger(__name__)


class TrialLoop:
    """Runs a worker's trials one after another; heavy objects are built once.

    Args:
        job: the worker's :class:`~mlsel.metalearn.search.workers.WorkerJob`.
        events: where events go (``put(kind, **data)``).
        stop: an event; when set, a running trial stops at its next epoch.
    """

    def __init__(self, job: Any, events: Any, stop: Any) -> None:
        import torch

        from mlsel.experiment_store import Store
        from mlsel.metalearn.search.study import make_pruner, make_sampler, open_study
        from mlsel.metalearn.space import CandidateSpace
        from mlsel.profilers import read_dataset

        torch.set_num_threads(job.slot.threads)
        self.trainer = importlib.import_module(job.trainer)
        self.job, self.events, self.stop = job, events, stop
        self.space = job.space or CandidateSpace()
        seed = None if job.seed is None else job.seed + 1000 * job.slot.index
        self.study = open_study(
            Path(job.folder),
            sampler=make_sampler(job.sampler, seed=seed),
            pruner=make_pruner(job.pruner),
        )
        self.dataset = read_dataset(job.dataset_path, task=job.task)
        self.store = Store.open(job.home)
        self.cache = self.trainer.TensorCache()
        self.last_result: RunResult | None = None
        # observed / predicted wall time of this worker's completed runs: the cost model
        # learnt on other runs, and this machine may be busier or faster than it thinks
        self.slowdowns: list[float] = []
        self.profile: Any = None
        self.cost_model: Any = None

    def load_setup(self) -> None:
        """Read the profile and cost model the main process left in ``setup.pkl``."""
        path = Path(self.job.folder) / SETUP_FILE
        if path.is_file():
            with path.open("rb") as handle:
                self.profile, self.cost_model = pickle.load(handle)

    def _config(self, trial: Any) -> Config:
        """The trial's config; an enqueued (warm-start) trial trains exactly what was enqueued."""
        # Optuna keeps an enqueued trial's params in its system attrs (no public getter).
        attrs = self.study._storage.get_trial_system_attrs(trial._trial_id)
        enqueued = attrs.get("fixed_params") or {}
        fixed = {**self.job.fixed}
        try:
            config = self.space.sample_config(trial, self.job.task, fixed=fixed)
        except ValueError:  # an enqueued value outside the space's choices
            if not enqueued:
                raise
            config = Config.from_params(enqueued)
        if enqueued:
            wanted = Config.from_params(enqueued)
            if wanted.key() != config.key():
                logger.warning(
                    "trial %d: the space changed the enqueued config; training it as enqueued",
                    trial.number,
                )
                config = wanted
        return config

    def _predicted_seconds(self, config: Config) -> float | None:
        model, profile = self.cost_model, self.profile
        if model is None or profile is None:
            return None
        try:
            return float(model.predict(config, profile).total_seconds)
        except (MlselError, ValueError, KeyError) as exc:
            logger.warning("cost model could not predict %s: %s", config.arch, exc)
            return None

    def run_one(self) -> bool:
        """Ask, train and tell one trial. Returns False when the trial was skipped."""
        from optuna.trial import TrialState

        stop_run, train = self.trainer.StopRun, self.trainer.train

        trial = self.study.ask()
        config = self._config(trial)
        modelled = self._predicted_seconds(config)  # the cost model's own figure
        slowdown = statistics.median(self.slowdowns) if self.slowdowns else 1.0
        predicted = None if modelled is None else modelled * slowdown
        left = self.job.budget.left()
        trimmable = "epochs" not in self.job.fixed and config.epochs > 1  # not a user choice
        if predicted is not None and modelled and predicted > left and trimmable:
            # epochs are a budget knob: a config that fits with fewer is trained so
            epochs = int(left / (predicted / config.epochs))
            if epochs >= 1:
                trial.set_user_attr("epochs_trimmed_from", config.epochs)
                modelled *= epochs / config.epochs
                predicted = modelled * slowdown
                config = config.with_(epochs=epochs)
        if not self.job.budget.fits(predicted):
            trial.set_user_attr("status", "skipped")
            trial.set_user_attr("skip_reason", f"predicted {predicted:.0f} s > {left:.0f} s left")
            self.study.tell(trial, state=TrialState.FAIL)
            self.events.put(
                "skip", trial=trial.number, arch=config.arch, predicted_seconds=predicted, left=left
            )
            return False
        warm = bool(trial.user_attrs.get("warm_start"))
        trial.set_user_attr("worker", self.job.slot.label)
        trial.set_user_attr("config", config.to_dict())
        if predicted is not None:
            trial.set_user_attr("predicted_seconds", predicted)
        self.events.put(
            "trial_start",
            trial=trial.number,
            config=config.to_dict(),
            warm=warm,
            predicted_seconds=predicted,
        )
        steps = 0

        def on_epoch(record: EpochRecord) -> None:
            nonlocal steps
            steps += 1
            self.events.put(
                "epoch",
                trial=trial.number,
                epoch=steps,
                score=record.score,
                seconds=record.seconds,
                epochs=config.epochs,
            )
            if record.score is not None:
                trial.report(float(record.score), steps)
                if trial.should_prune():
                    raise stop_run("pruned")
            last = steps >= config.epochs  # a finished run is not stopped, even if late
            if not last and (self.stop.is_set() or self.job.budget.expired()):
                raise stop_run("timeout")

        try:
            run_id, result = train(
                self.dataset,
                config,
                store=self.store,
                device=self.job.slot.device,
                on_epoch=on_epoch,
                cache=self.cache,
            )
        except MlselError as exc:
            run_id, result = None, RunResult(status="failed", error=str(exc))
        except Exception as exc:  # a trial's crash must not end the search
            logger.exception("trial %d crashed", trial.number)
            run_id, result = None, RunResult(status="failed", error=f"{type(exc).__name__}: {exc}")
        self._tell(trial, run_id, result)
        self.last_result = result
        if result.status == "completed" and result.wall_seconds and modelled:
            self.slowdowns.append(float(result.wall_seconds) / modelled)
        self.events.put(
            "trial_end",
            trial=trial.number,
            status=result.status,
            score=result.score,
            run_id=run_id,
            seconds=result.wall_seconds,
            warm=warm,
            config=config.to_dict(),
            error=result.error,
        )
        return True

    def _tell(self, trial: Any, run_id: str | None, result: RunResult) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("status", result.status)
        trial.set_user_attr("run_id", run_id)
        trial.set_user_attr("wall_seconds", result.wall_seconds)
        if result.error:
            trial.set_user_attr("error", result.error[:500])
        if result.status == "completed" and result.score is not None:
            self.study.tell(trial, float(result.score))
        elif result.status in ("pruned", "timeout"):
            if result.score is not None:
                trial.set_user_attr("score", float(result.score))
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, state=TrialState.FAIL)
