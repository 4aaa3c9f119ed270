"""`mlsel run` end to end with the real trainer: small_cnn on a few real digits, on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.experiment_store import Store
from mlsel.kernel.records import Config


@pytest.fixture(scope="module")
def digits_and_profile(tmp_path_factory: pytest.TempPathFactory):
    from mlsel.profilers import read_dataset, write_sample
    from mlsel.profilers.profile import profile_dataset

    out = tmp_path_factory.mktemp("digits") / "digits"
    write_sample("digits", out, classes=3, per_class=10)
    return out, profile_dataset(read_dataset(out))


@pytest.mark.slow
def test_run_warm_starts_with_the_suggestions_holds_its_budget_and_exports_the_best(
    digits_and_profile, mlsel_home: Path, tmp_path: Path
):
    from mlsel.metalearn import suggest
    from mlsel.profilers import read_dataset

    digits, profile = digits_and_profile
    store = Store.open(mlsel_home)
    store.save_profile(profile)
    picks = suggest(read_dataset(digits), store=store, top=50, budget_s=20, device="cpu")
    expected = [
        s.config.with_(epochs=2, image_size=16)
        for s in picks.suggestions
        if s.config.arch == "small_cnn"
    ][:2]
    assert expected, "the rules suggest small_cnn for tiny 8x8 digits"
    out = tmp_path / "best"
    budget = 30
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(digits),
            "--budget",
            f"{budget}s",
            "--gpus",
            "cpu",
            "--model",
            "small_cnn",
            "--epochs",
            "2",
            "--image-size",
            "16",
            "--top-k",
            "2",
            "--output",
            str(out),
            "--no-refit",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # how close it keeps to the budget: benchmarks/budget.py
    # the warm-start trials ran first and are exactly the suggestions
    assert [Config.from_dict(c).key() for c in data["warm_start"]] == [c.key() for c in expected]
    rows = sorted(data["leaderboard"], key=lambda r: r["trial"])
    # on a loaded machine only the first may fit the budget (the others are skipped)
    first = [r for r in rows if r["warm"]]
    assert first and [r["trial"] for r in first] == list(range(len(first)))
    for row, config in zip(first, expected, strict=False):
        assert store.get_run(row["run_id"]).config.key() == config.key()
    # the best model was exported with its metrics and config
    best = data["best"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run_id"] == best["run_id"] and metrics["score"] == pytest.approx(best["score"])
    assert json.loads((out / "config.json").read_text()) == best["config"]
    assert (out / "model.pt").is_file()


def test_run_rejects_a_bad_budget_and_an_unknown_model(tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(tmp_path), "--budget", "soon"])
    assert result.exit_code == 2 and "Got 'soon'" in result.output
    result = runner.invoke(app, ["run", str(tmp_path), "--budget", "1m", "--model", "nope"])
    assert result.exit_code == 2 and "nope" in result.output


def test_every_status_and_any_text_render_in_the_leaderboard_and_the_event_lines() -> None:
    from rich.console import Console

    from mlsel.cli import run as run_cli
    from mlsel.kernel.records import Config
    from mlsel.metalearn.search import LeaderboardRow, SearchProgress, TrialEnded

    config = Config("torchvision", "small_cnn", pretrained=None, finetune="full")
    rows = [
        LeaderboardRow(i, i, status, 0.5, "small_cnn", config.to_dict(), 1.0, False, "r[/]x")
        for i, status in enumerate(["completed", "interrupted", "timeout", "odd[/]status"])
    ]

    class Report:
        dataset_name, name = "data[/b]", "s1"

    Report.rows = rows  # type: ignore[attr-defined]
    out = Console(record=True, width=100)
    out.print(run_cli._leaderboard(Report(), top=10))  # type: ignore[arg-type]
    text = out.export_text()
    assert "interrupted" in text and "odd[/]status" in text and "data[/b]" in text
    event = TrialEnded(
        worker="cpu",
        time=1.0,
        trial=3,
        config=config,
        status="interrupted",
        score=None,
        run_id=None,
        seconds=None,
        warm=False,
    )
    run_cli._print_event(SearchProgress(started_at=0.0), event)  # no MarkupError
