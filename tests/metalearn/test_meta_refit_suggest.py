"""Refit gating, and suggest with rules (empty store) or with a trained ranker."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.experiment_store import Store
from mlsel.kernel.errors import RankerError
from mlsel.kernel.records import DatasetProfile
from mlsel.metalearn import refit, suggest
from mlsel.metalearn.ranker import RankerModel
from mlsel.metalearn.synthetic import synthetic_detection_runs, synthetic_runs

FEW = DatasetProfile(
    "userfp",
    "classify",
    {"images_per_class_min": 12.0, "n_train": 120.0, "n_classes": 10.0},
    "t",
    name="mine",
)


def _fill(store: Store, n: int = 6, runs=None) -> None:  # noqa: ANN001
    rows, seen = [], set()
    for profile, config, result in runs if runs is not None else synthetic_runs(n):
        if profile.fingerprint not in seen:
            store.save_profile(profile)
            seen.add(profile.fingerprint)
        rows.append((profile.fingerprint, config, result))
    store.log_runs(rows)


def test_suggest_with_an_empty_store_uses_rules_and_says_so(mlsel_home) -> None:
    report = suggest(FEW, store=Store.open(mlsel_home), top=4)
    assert report.scorer == "rules" and "no ranker" in report.note
    assert len(report.suggestions) == 4
    assert len({s.config.arch for s in report.suggestions}) == 4  # diverse
    first = report.suggestions[0]
    assert first.config.pretrained == "imagenet" and first.config.finetune == "linear"
    assert any("few images per class (12)" in r for r in first.reasons)
    assert first.predicted_seconds > 0 and first.predicted_memory_mb > 0


def test_refit_gates_activation_and_suggest_explains(mlsel_home) -> None:
    store = Store.open(mlsel_home)
    with pytest.raises(RankerError, match="at least 3 datasets"):
        refit(store, home=mlsel_home)
    _fill(store, 16)
    first = refit(store, home=mlsel_home, max_folds=4)
    assert first.activated and "the rules" in first.reason
    assert store.active_ranker().version == first.version
    report = suggest(FEW, store=store, top=3)
    assert report.scorer == "ranker" and first.version in report.note
    assert all(s.reasons for s in report.suggestions)
    # a ranker measured worse than the active one on the same folds is saved but inactive
    weak = RankerModel(n_estimators=1, num_leaves=2, min_child_samples=100_000)
    second = refit(store, home=mlsel_home, max_folds=4, ranker=weak)
    assert not second.activated and "kept inactive" in second.reason
    assert second.evaluation["active"]["version"] == first.version
    assert store.active_ranker().version == first.version
    assert len(store.list_rankers()) == 2


def test_cli_suggest_and_refit_json(mlsel_home, tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["refit", "--json"])
    assert result.exit_code == 2 and "at least 3 datasets" in result.output
    _fill(Store.open(mlsel_home), 4)
    result = runner.invoke(app, ["refit", "--folds", "2"])
    assert result.exit_code == 0, result.output
    assert "best-on-average" in result.output and "activated" in result.output
    assert "The gate" in result.output and "candidate" in result.output
    store = Store.open(mlsel_home)
    store.activate_ranker(store.list_rankers()[0].version)
    result = runner.invoke(app, ["refit", "--json", "--folds", "2"])
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.output)["evaluation"]
    assert evaluation["active"]["scored_by"] == "refitted"
    assert {"regret@1", "ndcg@5"} <= set(evaluation["candidate"]) & set(evaluation["active"])
    assert evaluation["compared_on"]["n_folds"] == 2
    result = runner.invoke(app, ["suggest", str(tmp_path / "missing"), "--json"])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["suggest", str(tmp_path), "--budget", "soon"])
    assert result.exit_code == 2 and "budget" in result.output


@pytest.mark.parametrize("detect_datasets", [2, 6])
def test_suggest_says_when_the_ranker_ranks_detection_configs(mlsel_home, detect_datasets) -> None:
    store = Store.open(mlsel_home)
    _fill(store, 16)
    _fill(store, runs=synthetic_detection_runs(detect_datasets))
    new = DatasetProfile(
        "newdet", "detect", {"box_side_median": 0.45, "n_train": 100.0, "n_classes": 3.0}, "t"
    )
    refit(store, home=mlsel_home, max_folds=4)
    model = RankerModel.load(store.active_ranker().path)
    assert model.task_counts_["detect"] == [6 * detect_datasets, detect_datasets]
    report = suggest(new, store=store, top=3)
    if detect_datasets < 3:
        assert report.scorer == "rules" and "only 2 detect datasets" in report.note
        return
    assert report.scorer == "ranker"
    assert f"ranks detection configs from 36 runs on {detect_datasets} such" in report.note
    assert report.suggestions[0].config.arch.startswith("fasterrcnn")
