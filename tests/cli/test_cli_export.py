"""`mlsel export` and `mlsel predict` on a real linear-probe run: the export's own
predict.py and `mlsel predict` (the run and the export alike) agree on every image, an
unreadable file is one line and the others are still predicted, and a model or folder
that cannot be used is one red line."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from tests.trained_probe import TrainedProbe, trained_probe

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, _session_cache: Path
) -> Iterator[TrainedProbe]:
    with trained_probe(tmp_path_factory.mktemp("cli-export"), _session_cache) as run:
        yield run


@pytest.fixture(scope="module")
def exported(trained: TrainedProbe, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli-exported") / "model"
    result = runner.invoke(app, ["--home", str(trained.home), "export", trained.run_id, str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    # The store keeps the dataset's path: parity ran on its validation images.
    assert f"parity: {len(trained.val)} validation images: top-1 agreement 1.0000" in text
    assert f"predict: python {out / 'predict.py'} IMAGES... --top-k 3" in text
    return out


@pytest.fixture
def images(trained: TrainedProbe, tmp_path: Path) -> Path:
    """The validation images in a folder (one nested), with one file that is no image."""
    folder = tmp_path / "images"
    (folder / "nested").mkdir(parents=True)
    for i, path in enumerate(trained.val):
        shutil.copy(path, folder / ("nested" if i % 2 else "") / f"{i}-{path.name}")
    (folder / "broken.png").write_bytes(b"this is not a png")
    return folder


def _by_path(rows: list[dict]) -> dict[str, dict]:
    return {row["path"]: row for row in rows}


def test_mlsel_predict_and_predict_py_agree_on_every_image(
    trained: TrainedProbe, exported: Path, images: Path
) -> None:
    home = ["--home", str(trained.home)]
    args = [str(images), "--json", "--top-k", "2"]
    by_run = runner.invoke(app, [*home, "predict", trained.run_id, *args])
    by_export = runner.invoke(app, [*home, "predict", str(exported), *args])
    script = subprocess.run(
        [sys.executable, "-I", str(exported / "predict.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    outputs = [(by_run.stdout, by_run.stderr), (by_export.stdout, by_export.stderr)]
    assert by_run.exit_code == by_export.exit_code == script.returncode == 1  # one skipped
    outputs.append((script.stdout, script.stderr))
    tables = []
    for stdout, stderr in outputs:
        (line,) = stderr.strip().splitlines()  # the unreadable file, in one line
        assert "broken.png" in line and "Cannot decode image" in line
        tables.append(_by_path(json.loads(stdout)))
    reference = tables[0]
    assert len(reference) == len(trained.val)
    for table in tables[1:]:
        assert list(table) == list(reference)  # the same files, walked in the same order
        for path, row in table.items():
            want = reference[path]
            assert [t["label"] for t in row["top_k"]] == [t["label"] for t in want["top_k"]]
            got_p = [t["probability"] for t in row["top_k"]]
            np.testing.assert_allclose(got_p, [t["probability"] for t in want["top_k"]], atol=1e-4)
    val = trained.dataset.split("val")
    truth = {f"{i}-{Path(item.path).name}": item.label for i, item in enumerate(val)}
    right = sum(row["label"] == truth[Path(path).name] for path, row in reference.items())
    assert right >= 0.7 * len(reference)  # and the labels are mostly right


def test_mlsel_predict_writes_csv_rows_and_a_table(trained: TrainedProbe, images: Path) -> None:
    home = ["--home", str(trained.home)]
    result = runner.invoke(app, [*home, "predict", trained.run_id, str(images), "--csv"])
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["path", "label", "probability"] and len(rows) == 1 + len(trained.val)
    assert all(row[1] in trained.dataset.classes for row in rows[1:])
    table = runner.invoke(app, [*home, "predict", trained.run_id, str(trained.val[0])])
    assert table.exit_code == 0 and f"run {trained.run_id}: 1 images" in table.stdout


def test_an_unknown_model_and_a_taken_folder_are_one_line(
    trained: TrainedProbe, tmp_path: Path
) -> None:
    home = ["--home", str(trained.home)]
    unknown = runner.invoke(app, [*home, "predict", "no-such-model", str(trained.val[0])])
    assert unknown.exit_code == 2
    (line,) = unknown.output.strip().splitlines()
    assert line.startswith("error: No model named 'no-such-model'") and "run id" in line
    best = runner.invoke(app, [*home, "export", "best", str(tmp_path / "x")])
    assert best.exit_code == 2 and "--dataset" in best.output
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    refused = runner.invoke(app, [*home, "export", trained.run_id, str(taken)])
    assert refused.exit_code == 2
    (line,) = refused.output.strip().splitlines()
    assert "exists and is not empty" in line and "--force" in line
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]
