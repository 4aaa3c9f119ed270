"""Options out of range are one red line in the one template, not a Typer box."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["suggest", "{data}", "--top", "0"],
            "The 'top' parameter of suggest must be an int in [1, inf). Got 0 instead.",
        ),
        (
            ["suggest", "{data}", "-k", "-2"],
            "The 'top' parameter of suggest must be an int in [1, inf). Got -2 instead.",
        ),
        (
            ["runs", "--limit", "-1"],
            "The 'limit' parameter of runs must be an int in [0, inf). Got -1 instead. "
            "Pass 0 to show all runs.",
        ),
        (
            ["refit", "--folds", "-1"],
            "The 'folds' parameter of refit must be an int in [0, inf). Got -1 instead. "
            "Pass 0 for one fold per dataset.",
        ),
        (
            ["train", "{data}", "--arch", "small_cnn", "--epochs", "0"],
            "The 'epochs' parameter of train must be an int in [1, 100000]. Got 0 instead.",
        ),
        (
            ["sample", "digits", "{data}", "--per-class", "0"],
            "The 'per_class' parameter of sample must be an int in [1, inf). Got 0 instead.",
        ),
    ],
)
def test_an_option_out_of_range_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    argv = [a.replace("{data}", str(tmp_path / "data")) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {message}"


def test_train_checks_its_options_before_reading_the_dataset(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", str(tmp_path / "missing"), "--arch", "small_cnn", "--batch-size", "0"]
    )
    assert result.exit_code == 2
    assert "'batch_size' parameter of train" in result.output
    assert "does not exist" not in result.output
