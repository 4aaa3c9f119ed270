"""`mlsel retrain` and `mlsel models`: gates with their figures, a real challenger trained
from a real champion, promotion, refusal, the comparison report, aliases and rollback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.experiment_store import Store
from mlsel.kernel.errors import ConfigError
from mlsel.metalearn._compare import Gates, ModelScore, check_gates
from mlsel.metalearn.models import resolve_model
from mlsel.metalearn.retrain import retrain
from mlsel.metalearn.search import SearchSettings
from mlsel.profilers import write_sample
from tests.trained_probe import TrainedProbe, trained_probe

runner = CliRunner()


def _score(macro_f1: float, recall: dict[str, float], ms: float = 1.0) -> ModelScore:
    return ModelScore("m", "r", macro_f1, macro_f1, recall, ms, 40)


def test_each_gate_fails_alone_and_says_by_how_much() -> None:
    gates = Gates()
    champion = _score(0.80, {"a": 0.9, "b": 0.7})
    passing = check_gates(champion, _score(0.82, {"a": 0.86, "b": 0.78}, 1.4), gates)
    assert [c.passed for c in passing] == [True, True, True]
    small = check_gates(champion, _score(0.805, {"a": 0.9, "b": 0.71}), gates)
    assert [c.passed for c in small] == [False, True, True]
    assert "+0.0050 (< +0.01 needed)" in small[0].detail
    dropped = check_gates(champion, _score(0.85, {"a": 0.80, "b": 0.95}), gates)
    assert [c.passed for c in dropped] == [True, False, True]
    assert "-0.1000" not in dropped[1].detail and "+0.1000 on class 'a'" in dropped[1].detail
    slow = check_gates(champion, _score(0.85, {"a": 0.9, "b": 0.8}, 1.6), gates)
    assert [c.passed for c in slow] == [True, True, False]
    assert "1.60x (at most 1.5x allowed)" in slow[2].detail
    strict = check_gates(champion, _score(0.82, {"a": 0.9, "b": 0.74}), Gates(min_gain=0.05))
    assert not strict[0].passed
    # a class with 2 held-out images is not held to the drop gate, and the report says so
    thin = ModelScore("m", "r", 0.8, 0.8, {"a": 0.9, "b": 1.0}, 1.0, 40, support={"a": 38, "b": 2})
    checks = check_gates(thin, _score(0.85, {"a": 0.9, "b": 0.5}), gates)
    assert checks[1].passed and "not gated, fewer than 5 held-out images: 'b'" in checks[1].detail


def _paired(
    label: str, champion_hits: list[bool], challenger_hits: list[bool]
) -> tuple[ModelScore, ModelScore]:
    truth = tuple([label] * len(champion_hits))

    def score(hits: list[bool]) -> ModelScore:
        recall = sum(hits) / len(hits)
        return ModelScore(
            "m",
            "r",
            0.8,
            recall,
            {label: recall},
            1.0,
            len(hits),
            0,
            {label: len(hits)},
            truth,
            tuple(hits),
        )

    return score(champion_hits), score(challenger_hits)


def test_a_class_drop_counts_when_the_paired_test_finds_it() -> None:
    gates = Gates(min_gain=-1.0)
    # 2 of 20 images lost, none gained: recall -0.10, but p = 0.25: noise, not a drop
    lost_two = _paired("a", [True] * 20, [False, False] + [True] * 18)
    check = check_gates(*lost_two, gates)[1]
    assert check.passed and "not significant: paired sign test p = 0.25 >= 0.05" in check.detail
    # 8 lost, none gained: p = 0.0039, a real drop
    lost_eight = _paired("a", [True] * 20, [False] * 8 + [True] * 12)
    check = check_gates(*lost_eight, gates)[1]
    assert not check.passed and "significant: paired sign test p = 0.00391 < 0.05" in check.detail
    # alpha 1 counts every drop above the threshold, as a plain recall comparison would
    assert not check_gates(*lost_two, Gates(min_gain=-1.0, class_drop_alpha=1.0))[1].passed


def test_gates_live_in_the_store_settings(mlsel_home: Path) -> None:
    store = Store.open(mlsel_home)
    assert Gates.load(store) == Gates()
    result = runner.invoke(app, ["models", "gates", "--min-gain", "0.02", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "min_gain": 0.02,
        "max_class_drop": 0.05,
        "max_latency_ratio": 1.5,
        "min_class_support": 5.0,
        "class_drop_alpha": 0.05,
    }
    assert Gates.load(store).min_gain == 0.02
    bad = runner.invoke(app, ["models", "gates", "--max-latency-ratio", "0"])
    assert bad.exit_code != 0 and "max_latency_ratio > 0" in bad.output
    assert "Traceback" not in bad.output and Gates.load(store).max_latency_ratio == 1.5
    with pytest.raises(ConfigError):
        Gates(min_gain=float("nan"))


@pytest.fixture(scope="module")
def champion(
    tmp_path_factory: pytest.TempPathFactory, _session_cache: Path
) -> Iterator[TrainedProbe]:
    """A linear probe on 12 digits a class, promoted to digits@champion."""
    with trained_probe(tmp_path_factory.mktemp("retrain"), _session_cache) as run:
        result = runner.invoke(
            app, ["--home", str(run.home), "models", "promote", "digits", run.run_id]
        )
        assert result.exit_code == 0, result.output
        assert f"digits@champion is now digits@v1: run {run.run_id}" in result.stdout
        yield run


def _settings() -> SearchSettings:
    # the champion's config only, on the CPU: a deterministic challenger
    return SearchSettings(budget_s=300, gpus="cpu", warm_start=False, max_trials=1, seed=0)


def test_retrain_refuses_promotes_and_rolls_back(
    champion: TrainedProbe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSEL_HOME", str(champion.home))
    more = write_sample("digits", tmp_path / "more", classes=4, per_class=40, seed=3)
    champion_dir = champion.run_dir

    def slow(run_dir: Path) -> float:  # the challenger twice as slow as the champion
        return 10.0 if run_dir == champion_dir else 20.0

    refused = retrain("digits", _settings(), home=champion.home, data=str(more), latency=slow)
    assert not refused.promoted and refused.challenger is not None
    assert refused.challenger.macro_f1 >= refused.champion.macro_f1 + 0.01  # more data helps
    failed = [check.gate for check in refused.checks if not check.passed]
    assert failed == ["max_latency_ratio"]
    assert "2.00x (at most 1.5x allowed)" in refused.decision
    assert "digits@champion stays digits@v1" in refused.decision
    registry = champion.store.registry
    assert registry.get("digits").version == 1
    assert registry.get("digits", "challenger").version == 2
    assert refused.report_dir is not None
    report = (refused.report_dir / "report.md").read_text()
    assert "| max_latency_ratio | **no** |" in report
    assert (refused.report_dir / "comparison.png").stat().st_size > 1000
    saved = json.loads((refused.report_dir / "comparison.json").read_text())
    assert saved["promoted"] is False and saved["champion"]["latency_ms"] == 10.0

    # the same data again, gates passing, as a dry run: decided, reported, not promoted
    dry = retrain(
        "digits",
        _settings(),
        home=champion.home,
        data=str(more),
        latency=lambda _: 5.0,
        dry_run=True,
    )
    assert not dry.promoted and all(check.passed for check in dry.checks)
    assert "passes every gate; --dry-run: digits@v1 stays champion" in dry.decision
    assert registry.get("digits").version == 1

    # and for real: the challenger run is new, and promoted
    promoted = retrain(
        "digits", _settings(), home=champion.home, data=str(more), latency=lambda _: 5.0
    )
    assert promoted.promoted, promoted.decision
    new = registry.get("digits")
    assert (new.version, new.parent, new.promoted_by) == (4, 1, "mlsel retrain")
    assert new.evaluation["champion_macro_f1"] == pytest.approx(promoted.champion.macro_f1)
    assert resolve_model("digits", dataset=None, home=champion.home).run_id == new.run_id
    by_version = resolve_model("digits@v1", dataset=None, home=champion.home)
    assert (by_version.run_id, by_version.registry_version) == (champion.run_id, 1)

    listed = runner.invoke(app, ["models", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["ref"]: row for row in json.loads(listed.stdout)}
    assert (
        rows["digits@v4"]["aliases"] == ["challenger", "champion"]
        and rows["digits@v1"]["aliases"] == []
    )
    back = runner.invoke(app, ["models", "rollback", "digits"])
    assert back.exit_code == 0, back.output
    assert "rolled back from v4 to digits@v1" in " ".join(back.stdout.split())
    assert resolve_model("digits", dataset=None, home=champion.home).run_id == champion.run_id
    # export takes NAME@alias too
    exported = runner.invoke(app, ["export", "digits@challenger", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    metadata = json.loads((tmp_path / "export" / "metadata.json").read_text())
    assert metadata["run_id"] == new.run_id


def test_retrain_errors_are_one_line(
    champion: TrainedProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSEL_HOME", str(champion.home))
    unknown = runner.invoke(app, ["retrain", "cats"])
    assert unknown.exit_code != 0 and "no model named 'cats'" in unknown.output
    no_version = runner.invoke(app, ["retrain", "digits", "--data", "v7"])
    assert "neither a dataset folder nor a dataset version of digits" in no_version.output
    bad_alias = runner.invoke(app, ["predict", "digits@staging", str(champion.val[0])])
    assert "has no alias 'staging'" in bad_alias.output
    for result in (unknown, no_version, bad_alias):
        assert "Traceback" not in result.output
