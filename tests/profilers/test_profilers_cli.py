"""``mlsel sample`` and ``mlsel profile`` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mlsel.cli.app import app


def test_sample_then_profile_json_and_card(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "digits"
    result = runner.invoke(
        app, ["sample", "digits", str(data), "--classes", "3", "--per-class", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 15 images" in result.output
    card = tmp_path / "card.md"
    result = runner.invoke(
        app, ["profile", str(data), "--json", "--no-landmarkers", "--card", str(card)]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["layout"] == "class-folders" and payload["classes"] == ["0", "1", "2"]
    assert payload["features"]["n_images"] == 15 and payload["features"]["lm_1nn_acc"] is None
    text = card.read_text()
    assert text.startswith("# Data card: digits") and "| 0 | 4 | 1 | 0 |" in text


def test_profile_tables_and_warnings(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "shapes"
    assert (
        runner.invoke(
            app, ["sample", "shapes", str(data), "--classes", "2", "--per-class", "3"]
        ).exit_code
        == 0
    )
    (data / "circle" / "bad.png").write_bytes(b"nope")
    result = runner.invoke(app, ["profile", str(data), "--no-landmarkers"])
    assert result.exit_code == 0, result.output
    assert "Size" in result.output and "edge_density_mean" in result.output
    assert "warning:" in result.output and "circle/bad.png" in result.output


def test_profile_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["profile", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["profile", str(tmp_path), "--task", "audio"])
    assert result.exit_code == 2 and "classify or detect" in result.output
