"""The search's machinery (budget, workers, resume, target, pruning) with a fast stand-in
trainer: it logs real runs and curves to the real store, but "trains" by sleeping, with a
score that depends only on the learning rate. The end-to-end tests use the real trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlsel.experiment_store import Store
from mlsel.kernel.errors import ConfigError
from mlsel.kernel.records import Config
from mlsel.metalearn.search import (
    Budget,
    DeviceSlot,
    SearchSettings,
    TrialEnded,
    TrialStarted,
    parse_gpus,
    run_search,
)
from mlsel.metalearn.search.leaderboard import LeaderboardRow, best_row
from mlsel.metalearn.search.progress import SearchProgress
from tests.standin import CostedTrainer, SleepyTrainer, TickClock

# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_and_profile(tmp_path_factory: pytest.TempPathFactory):
    from mlsel.profilers import read_dataset, write_sample
    from mlsel.profilers.profile import profile_dataset

    out = tmp_path_factory.mktemp("digits") / "digits"
    write_sample("digits", out, classes=3, per_class=8)
    return out, profile_dataset(read_dataset(out))


@pytest.fixture(scope="module")
def colour_and_profile(tmp_path_factory: pytest.TempPathFactory):
    """A small colour dataset (crops of scikit-learn's two sample photos, 96 px)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from mlsel.profilers import read_dataset
    from mlsel.profilers.profile import profile_dataset

    out = tmp_path_factory.mktemp("colour") / "colour"
    rng = np.random.default_rng(0)
    for photo, name in zip(load_sample_images().images, ("temple", "flower"), strict=True):
        for split, n in (("train", 12), ("val", 6)):
            folder = out / split / name
            folder.mkdir(parents=True)
            for k in range(n):
                y, x = rng.integers(0, photo.shape[0] - 96), rng.integers(0, photo.shape[1] - 96)
                Image.fromarray(photo[y : y + 96, x : x + 96]).save(folder / f"{k}.png")
    return out, profile_dataset(read_dataset(out), landmarkers=False)


@pytest.fixture
def colour(colour_and_profile, mlsel_home: Path) -> Path:
    path, profile = colour_and_profile
    Store.open(mlsel_home).save_profile(profile)
    return path


@pytest.fixture
def digits(digits_and_profile, mlsel_home: Path) -> Path:
    """A tiny real digits dataset whose profile is already in this test's store."""
    path, profile = digits_and_profile
    Store.open(mlsel_home).save_profile(profile)
    return path


def _settings(**changes) -> SearchSettings:
    from mlsel.metalearn.space import CandidateSpace

    space = CandidateSpace(architectures={"small_cnn": ("torchvision", "classify")}, epochs=(2, 4))
    base = dict(
        budget_s=60,
        gpus="cpu",
        sampler="random",
        pruner="none",
        warm_start=False,
        output=None,
        refit=False,
        space=space,
        fixed={"image_size": 32},
        trainer=SleepyTrainer(),
        seed=0,
    )
    return SearchSettings(**{**base, **changes})


def _cpu_slots(n: int) -> tuple[DeviceSlot, ...]:
    return tuple(parse_gpus(f"cpu:{n}")[0])


# -- units ---------------------------------------------------------------------------------


def test_budget_instants_are_ordered_and_tolerance_is_5_percent_or_30s():
    budget = Budget.start(1000, started=0.0)
    assert budget.stop_at == 990.0 and budget.deadline == 1000.0
    assert budget.tolerance_s == 50.0
    assert budget.deadline < budget.kill_at <= budget.deadline + budget.tolerance_s
    assert Budget.start(60, started=0.0).tolerance_s == 30.0
    assert budget.fits(100, now=800) and not budget.fits(300, now=800)
    assert budget.fits(None, now=995) and budget.left(now=995) == 0.0
    with pytest.raises(ConfigError, match="Got -1"):
        Budget.start(-1)


def test_parse_gpus_pins_one_gpu_per_worker_and_rejects_missing_ones(monkeypatch):
    from mlsel.kernel.cores import usable_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    slots, note = parse_gpus("all", available=["0", "1", "2"])
    assert [(s.label, s.device, s.cuda_visible) for s in slots] == [
        ("cuda:0", "cuda:0", "0"),
        ("cuda:1", "cuda:0", "1"),
        ("cuda:2", "cuda:0", "2"),
    ]
    assert note == ""
    assert [s.cuda_visible for s in parse_gpus("0,2", available=["4", "5", "6"])[0]] == ["4", "6"]
    assert len(parse_gpus("2", available=["0", "1", "2"])[0]) == 2
    cpu, note = parse_gpus("all", available=[])
    assert [s.device for s in cpu] == ["cpu"] and cpu[0].cuda_visible == "" and "no GPU" in note
    assert cpu[0].threads == usable_cores()
    assert [s.label for s in parse_gpus("cpu:2")[0]] == ["cpu#0", "cpu#1"]
    for bad in ("3", "0,5", "gpu", "cpu:0"):
        with pytest.raises(ConfigError, match="gpus"):
            parse_gpus(bad, available=["0", "1"])


def test_progress_keeps_the_best_completed_score_over_a_stopped_ones():
    progress = SearchProgress(started_at=0.0)
    cfg = Config("torchvision", "small_cnn", epochs=3)
    for trial, status, score in (
        (0, "pruned", 0.9),
        (1, "completed", 0.5),
        (2, "timeout", 0.95),
        (3, "completed", 0.7),
    ):
        progress.update(
            TrialStarted(
                worker="cpu", time=1.0, trial=trial, config=cfg, warm=False, predicted_seconds=1
            )
        )
        progress.update(
            TrialEnded(
                worker="cpu",
                time=2.0 + trial,
                trial=trial,
                status=status,
                score=score,
                config=cfg,
                run_id=None,
                seconds=1.0,
                warm=False,
            )
        )
    assert (progress.best_trial, progress.best_score) == (3, 0.7)
    assert progress.history == [(3.0, 0.5), (5.0, 0.7)]
    assert progress.statuses == {"completed": 2, "pruned": 1, "timeout": 1}


def test_leaderboard_shows_a_pruned_trial_with_its_run_score_not_its_last_epoch():
    import optuna
    from optuna.trial import TrialState

    from mlsel.metalearn.search.leaderboard import leaderboard

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for epochs, state in (((0.30, 0.6, 0.1), TrialState.PRUNED), ((0.4, 0.5), None)):
        trial = study.ask()
        trial.set_user_attr("config", {"arch": "small_cnn", "epochs": len(epochs)})
        for step, score in enumerate(epochs, start=1):
            trial.report(score, step)
        if state is None:
            trial.set_user_attr("status", "completed")
            study.tell(trial, epochs[-1])
        else:  # the run's score is its best epoch, as the trainers log it
            trial.set_user_attr("status", "pruned")
            trial.set_user_attr("score", max(epochs))
            study.tell(trial, state=state)
    rows = leaderboard(study)
    assert [(r.trial, r.status, r.score) for r in rows] == [
        (1, "completed", 0.5),
        (0, "pruned", 0.6),
    ]


# -- the search, in worker processes -------------------------------------------------------


@pytest.mark.slow
def test_two_workers_log_concurrently_without_loss(digits: Path, mlsel_home: Path):
    report = run_search(digits, _settings(max_trials=6, slots=_cpu_slots(2)))
    assert report.progress.statuses == {"completed": 6}
    workers = {row.worker for row in report.rows}
    assert workers == {"cpu#0", "cpu#1"}
    store = Store.open(mlsel_home)
    runs = {r.run_id: r for r in store.list_runs()}
    assert sorted(runs) == sorted(row.run_id for row in report.rows)
    for row in report.rows:
        assert runs[row.run_id].status == "completed"
        assert len(store.epochs(row.run_id)) == row.config["epochs"]
        assert runs[row.run_id].result.score == pytest.approx(row.score)


@pytest.mark.slow
def test_budget_holds_and_running_trials_stop_as_timeout(digits, mlsel_home, tmp_path):
    # The budget's clock moves 2.5 s an epoch: 10 epochs would take 25 s, twice the budget.
    clock = TickClock(tmp_path / "clock", step=2.5)
    settings = _settings(
        budget_s=12,
        fixed={"epochs": 10, "image_size": 32},
        clock=clock,
        trainer=SleepyTrainer(clock=clock),
    )
    report = run_search(digits, settings)
    budget = Budget.start(12, started=0.0)
    # the first trial stops before an epoch as long as its last that would end past
    # stop_at (11.64 s): after 4 epochs (10 s on the clock). A second trial starts in the
    # 1.64 s left; with no cost model and no epoch of its own yet, it trains one epoch
    assert report.stop_reason == "budget spent"
    assert report.progress.statuses == {"timeout": 2}, report.progress.statuses
    assert report.elapsed_s == 12.5 <= budget.deadline + budget.tolerance_s
    store = Store.open(mlsel_home)
    curves = sorted(
        len(store.get_run(r.run_id).result.curve) for r in report.rows if r.status == "timeout"
    )
    assert curves == [1, 4]


@pytest.mark.slow
def test_target_stops_the_search_after_the_first_good_trial(digits):
    report = run_search(digits, _settings(target=0.01, max_trials=50))
    assert report.stop_reason.startswith("target 0.01 reached")
    assert report.progress.statuses["completed"] == 1
    assert report.progress.started == 1


@pytest.mark.slow
def test_resume_continues_without_repeating_finished_trials(digits, mlsel_home):
    first = run_search(digits, _settings(max_trials=2, name="s1"))
    second = run_search(digits, _settings(max_trials=4, name="s1", resume=True))
    assert second.name == "s1" and second.folder == first.folder
    before = {r.trial: r.run_id for r in first.rows}
    after = {r.trial: r.run_id for r in second.rows}
    assert sorted(after) == [0, 1, 2, 3]
    assert {t: after[t] for t in before} == before  # the first two were not run again
    assert second.progress.started == 2
    assert len(Store.open(mlsel_home).list_runs()) == 4
    with pytest.raises(ConfigError, match="--resume"):
        run_search(digits, _settings(max_trials=1, name="s1"))


@pytest.mark.slow
def test_pruner_stops_a_trial_worse_than_the_first_at_the_first_rung(digits, mlsel_home):
    from mlsel.metalearn.search import study as study_module
    from mlsel.profilers import read_dataset

    fingerprint = read_dataset(digits).fingerprint
    folder = study_module.search_dir(mlsel_home, fingerprint, "prune")
    study = study_module.open_study(folder, create=True)
    good = Config(
        "torchvision",
        "small_cnn",
        pretrained=None,
        finetune="full",
        lr=3e-3,
        epochs=4,
        image_size=32,
    )
    for config in (good, good.with_(lr=1e-5), good.with_(lr=0.09)):
        study.enqueue_trial(config.to_params())
    report = run_search(
        digits, _settings(max_trials=3, name="prune", resume=True, pruner="halving")
    )
    by_trial = {r.trial: r for r in report.rows}
    assert by_trial[0].status == "completed"
    assert by_trial[1].status == "pruned" and by_trial[2].status == "pruned"
    store = Store.open(mlsel_home)
    assert [e.epoch for e in store.epochs(by_trial[1].run_id)] == [1]


def test_a_file_that_cannot_be_decoded_stops_the_search_before_any_trial(
    digits_and_profile, tmp_path: Path, mlsel_home: Path
) -> None:
    import shutil

    from mlsel.kernel.errors import DatasetError

    source, _ = digits_and_profile
    data = tmp_path / "digits"
    shutil.copytree(source, data)
    victim = sorted((data / "0").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:60])  # a truncated PNG: its header still reads
    with pytest.raises(DatasetError, match="cannot be decoded.*--skip-bad-files"):
        run_search(data, _settings(max_trials=1))
    assert Store.open(mlsel_home).list_runs() == []  # no trial was tried, none failed
    report = run_search(data, _settings(max_trials=1, skip_bad_files=True))
    assert report.progress.statuses == {"completed": 1}
    assert any("left out 1 image" in note for note in report.notes)


def test_two_searches_started_in_the_same_second_get_two_names(mlsel_home, monkeypatch):
    from mlsel.metalearn.search import search as search_module

    monkeypatch.setattr(search_module.time, "strftime", lambda fmt: "20261201-120000")
    first = search_module._new_name(mlsel_home, "f" * 16)
    second = search_module._new_name(mlsel_home, "f" * 16)
    assert (first, second) == ("20261201-120000", "20261201-120000-2")


@pytest.mark.slow
def test_a_resumed_search_counts_the_best_of_its_earlier_trials(digits, mlsel_home):
    first = run_search(digits, _settings(max_trials=2, name="r1"))
    second = run_search(digits, _settings(max_trials=3, name="r1", resume=True))
    earlier = max(r.score for r in first.rows if r.status == "completed")
    assert second.progress.best_score is not None and second.progress.best_score >= earlier
    assert second.progress.started == 1  # the counts are this command's


def _whole_space(budget_s: float, tmp_path: Path) -> SearchSettings:
    """The default search (whole space, shortlist, warm start) on a ticking clock, trained
    by a stand-in exactly as fast as the cost model predicts."""
    clock = TickClock(tmp_path / "clock", step=0.5)
    trainer = CostedTrainer(clock)
    return SearchSettings(
        budget_s=budget_s,
        gpus="cpu",
        output=None,
        refit=False,
        clock=clock,
        trainer=trainer,
        seed=0,
    )


@pytest.mark.slow
def test_the_search_spends_at_least_80_percent_of_its_budget_training(colour, mlsel_home, tmp_path):
    # The whole candidate space, drawn from the ranked shortlist, on a machine exactly as
    # fast as the cost model predicts: trials fill the budget instead of being skipped.
    settings = _whole_space(180, tmp_path)
    report = run_search(colour, settings)
    runs = Store.open(mlsel_home).runs_frame()
    trained = float(runs.filter(runs["source"] == "local")["wall_seconds"].sum())
    assert trained >= 0.8 * settings.budget_s, (trained, report.progress.statuses)
    assert report.progress.skipped <= 2, report.progress.skipped
    best = report.best
    assert best is not None and best.config["finetune"] == "linear"
    # the shortlist's entries were each tried, and ensembles of the probes trained so far
    entries = {row.config["arch"] for row in report.rows}
    assert len(entries) >= 3, entries
    ensembles = [r for r in report.rows if "ensemble_wd" in r.config["extra"]]
    assert ensembles and all("+" in r.arch for r in ensembles)


@pytest.mark.slow
def test_a_budget_too_short_for_any_config_still_trains_the_cheapest(colour, tmp_path):
    report = run_search(colour, _whole_space(2, tmp_path))
    assert report.progress.started >= 1
    assert sum(report.progress.statuses.values()) >= 1, report.progress.statuses


def _row(trial: int, score: float, run_id: str) -> LeaderboardRow:
    return LeaderboardRow(
        rank=trial, trial=trial, status="completed", score=score, arch="a", run_id=run_id
    )


def test_the_kept_trial_is_the_lowest_loss_within_one_standard_error_of_the_top():
    rows = [_row(0, 0.70, "r0"), _row(1, 0.68, "r1"), _row(2, 0.50, "r2")]
    losses = {"r0": 0.9, "r1": 0.6, "r2": 0.1}
    # 100 val images: one standard error at 0.70 is 0.046, so trial 1 is as good as 0
    assert best_row(rows, val_losses=losses, n_val=100).trial == 1
    # 10,000 val images tell 0.70 from 0.68 apart: the top score stays
    assert best_row(rows, val_losses=losses, n_val=10_000).trial == 0
    assert best_row(rows).trial == 0  # without losses, the top score


def test_a_kept_linear_probe_is_exported_refitted_on_train_and_val(digits, tmp_path, monkeypatch):
    # The real trainer, one linear probe on real digits: the exported model is the probe
    # fitted again on train + val, and the export says so beside the held-out scores.
    import json

    import torch

    from mlsel.metalearn.space import CandidateSpace
    from mlsel.trainers import CachedTrainer, Predictor

    monkeypatch.setenv("MLSEL_CACHE_DIR", str(tmp_path / "machine-cache"))
    fixed = {"image_size": 32, "pretrained": "imagenet", "finetune": "linear", "epochs": 1}
    settings = _settings(
        space=CandidateSpace(architectures={"efficientnet_lite0": ("torchvision", "classify")}),
        fixed={**fixed, "augment": "none"},
        trainer=CachedTrainer(),
        max_trials=1,
        output=tmp_path / "best",
    )
    report = run_search(digits, settings)
    assert report.best is not None and report.output == tmp_path / "best"
    assert any("refitted on train + val" in note for note in report.notes), report.notes
    exported = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert exported["final_fit"]["splits"] == "train+val"
    assert exported["score"] == pytest.approx(report.best.score)  # the held-out score
    run_dir = Path(Store.open().get_run(report.best.run_id).result.artifact_dir)
    # the refit is kept beside the run's own model, and the export is that refit
    final = run_dir / "final"
    assert (final / "model.pt").read_bytes() == (tmp_path / "best" / "model.pt").read_bytes()
    assert json.loads((final / "metrics.json").read_text())["final_fit"] == exported["final_fit"]
    assert not (tmp_path / "best" / "final").exists()
    heads = [
        torch.load(folder / "model.pt", weights_only=True)["head_state"]["1.weight"]
        for folder in (run_dir, tmp_path / "best")
    ]
    assert not torch.equal(*heads)  # the run keeps its own fit; the export has the refit
    from mlsel.profilers import read_dataset

    items = read_dataset(digits).split("val")
    assert len(Predictor(tmp_path / "best").predict([item.path for item in items])) == len(items)
    # `best` names the refit, and its export says what it was fitted on
    from mlsel.metalearn.models import resolve_model
    from mlsel.trainers.export import export_model

    kept = resolve_model("best", dataset=str(digits), home=None)
    assert kept.run_dir == final
    paths = [Path(item.path) for item in items]
    report = export_model(final, tmp_path / "onnx", parity_images=paths, run_record=kept.record)
    assert report.parity.passed
    metadata = json.loads((tmp_path / "onnx" / "metadata.json").read_text())
    assert metadata["final_fit"] == exported["final_fit"]
    assert "refitted on train+val" in (tmp_path / "onnx" / "MODEL_CARD.md").read_text()


def _suggested(monkeypatch, tmp_path, task: str, seconds: float) -> tuple[list, list, Budget]:
    """``_suggestions`` of a 300 s search on a ``task`` dataset whose ranker proposes three
    configs of 20 epochs, each predicted to take ``seconds``: (warm picks, shortlist, budget)."""
    from types import SimpleNamespace

    from mlsel.kernel.records import DatasetProfile
    from mlsel.metalearn import _suggest
    from mlsel.metalearn._suggest import Suggestion, SuggestionReport
    from mlsel.metalearn.search.search import _suggestions

    profile = DatasetProfile("fp", task, {}, "t")
    picks = [Config(backend="torchvision", arch=a, epochs=20) for a in ("a1", "a2", "a3")]
    report = SuggestionReport(
        profile,
        tuple(Suggestion(c, 1.0 - i, seconds, 0.0, (), i + 1) for i, c in enumerate(picks)),
        "ranker",
        "",
    )
    monkeypatch.setattr(_suggest, "suggest", lambda *a, **k: report)
    budget = Budget.start(300, clock=lambda: 0.0)
    dataset: Any = SimpleNamespace(task=task)  # all _suggestions reads of it, with suggest
    _, warm, shortlist = _suggestions(
        dataset,
        SearchSettings(budget_s=300),
        Store.open(tmp_path),
        tmp_path,
        budget,
        False,
    )
    assert shortlist == picks
    return warm, shortlist, budget


@pytest.mark.parametrize("task", ["classify", "detect"])
def test_a_detection_search_gives_the_rankers_first_pick_the_whole_budget(
    monkeypatch, tmp_path, task
) -> None:
    """Three picks of 20 epochs predicted at 600 s each on a 300 s budget: a
    classification search trims each to its quarter of the budget, a detection search
    trains the first alone, trimmed to the whole budget."""
    warm, _, budget = _suggested(monkeypatch, tmp_path, task, 600.0)
    per_epoch = 600.0 / 20
    if task == "detect":
        assert [(c.arch, c.epochs) for c in warm] == [("a1", int(budget.left() / per_epoch))]
        assert warm[0].epochs >= 8  # near 300 s of 30 s epochs, less what the budget keeps
    else:
        quarter = int(budget.left() / 4 / per_epoch)
        assert [(c.arch, c.epochs) for c in warm] == [(a, quarter) for a in ("a1", "a2", "a3")]


def test_a_short_detection_pick_grows_to_fill_the_budget(monkeypatch, tmp_path) -> None:
    from mlsel.metalearn.search.search import MAX_DETECT_EPOCHS

    warm, _, budget = _suggested(monkeypatch, tmp_path, "detect", 100.0)  # 5 s an epoch
    assert [(c.arch, c.epochs) for c in warm] == [("a1", int(budget.left() / 5.0))]
    warm, _, _ = _suggested(monkeypatch, tmp_path, "detect", 20.0)  # 1 s an epoch: capped
    assert warm[0].epochs == MAX_DETECT_EPOCHS
    warm, _, _ = _suggested(monkeypatch, tmp_path, "classify", 20.0)  # fits: as suggested
    assert [c.epochs for c in warm] == [20, 20, 20]
