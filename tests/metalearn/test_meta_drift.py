"""`drift_report` and `mlsel drift` on a real linear-probe champion (4 classes of real
digits at 64 px): held-out digits of the same source are not flagged, the same digits
inverted are; fixed seeds give the same p-values; exit codes 0 / 3; bad folders are one
line."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.kernel.errors import ConfigError, DatasetError
from mlsel.metalearn.drift import DriftReport, drift_report, mmd_permutation_test
from mlsel.metalearn.models import resolve_model
from mlsel.profilers.samples import load_real
from tests.trained_probe import TrainedProbe, trained_probe

runner = CliRunner()
HELD_OUT = 10  # new digits a class
HELD_OUT_SEED = 1


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, _session_cache: Path
) -> Iterator[TrainedProbe]:
    with trained_probe(tmp_path_factory.mktemp("drift"), _session_cache) as run:
        yield run


def _held_out(trained: TrainedProbe) -> list[tuple[str, np.ndarray]]:
    """``(class, 8x8 image)`` of digits of the champion's classes it never saw, drawn at
    random (the digits are ordered by writer: the last ones are not a fresh sample)."""
    images, labels, names = load_real("digits")
    seen = {int(p.stem.split("_")[1]) for p in Path(trained.data).rglob("*.png")}
    rng = np.random.default_rng(HELD_OUT_SEED)
    out: list[tuple[str, np.ndarray]] = []
    for label in trained.dataset.classes:
        members = [i for i in np.flatnonzero(labels == names.index(label)) if i not in seen]
        out.extend((label, images[i]) for i in sorted(rng.choice(members, HELD_OUT, False)))
    return out


@pytest.fixture(scope="module")
def folders(trained: TrainedProbe, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``fresh``: held-out digits, nested, plus one file that is no image; ``shifted``:
    the same digits inverted (a scanner that writes white on black the other way)."""
    root = tmp_path_factory.mktemp("drift-folders")
    fresh, shifted = root / "fresh", root / "shifted"
    for n, (label, image) in enumerate(_held_out(trained)):
        nested = fresh / f"batch{n % 2}" / ("deeper" if n % 3 == 0 else "")
        nested.mkdir(parents=True, exist_ok=True)
        shifted.mkdir(exist_ok=True)
        Image.fromarray(image).save(nested / f"{label}-{n}.png")
        Image.fromarray(255 - image).save(shifted / f"{label}-{n}.png")
    (fresh / "broken.png").write_bytes(b"this is not a png")
    return {"fresh": fresh, "shifted": shifted}


@pytest.fixture(scope="module")
def reports(trained: TrainedProbe, folders: dict[str, Path]) -> dict[str, DriftReport]:
    model = resolve_model(trained.run_id, dataset=None, home=trained.home)
    return {
        name: drift_report(model, folder, home=trained.home, seed=0)
        for name, folder in folders.items()
    }


def test_a_fresh_sample_of_the_same_source_is_not_flagged(
    reports: dict[str, DriftReport], folders: dict[str, Path]
) -> None:
    report = reports["fresh"]
    assert not report.drifted, report.verdict
    assert report.verdict.startswith("no drift: the new images' embeddings match")
    assert report.embedding.p_value >= 0.01
    assert report.embedding.arch == "efficientnet_lite0" and report.embedding.image_size == 64
    assert not report.classes.drifted and report.classes.tv <= 0.3
    assert report.n_images == 4 * HELD_OUT + 1 and report.n_new == 4 * HELD_OUT
    assert report.skipped == (str(folders["fresh"] / "broken.png"),)
    assert 30 <= report.n_reference <= 48  # the train split of 48 digits


def test_inverted_digits_are_flagged_and_brightness_moved_most(
    reports: dict[str, DriftReport],
) -> None:
    report = reports["shifted"]
    assert report.drifted, report.verdict
    assert report.embedding.drifted and report.embedding.p_value < 0.01
    top = report.profile.shifts[0]
    assert report.profile.moved and abs(top.smd) >= 1.0
    brightness = next(s for s in report.profile.shifts if s.name == "brightness")
    assert brightness.smd > 1.0 and brightness.new_mean > brightness.reference_mean
    assert re.match(
        r"drift: the new images' embeddings differ from the training data "
        r"\(MMD p = [0-9.e-]+ < 0\.01\)",
        report.verdict,
    )
    assert report.embedding.mmd2 > reports["fresh"].embedding.mmd2


def test_fixed_seeds_give_the_same_p_values(
    trained: TrainedProbe, folders: dict[str, Path], reports: dict[str, DriftReport]
) -> None:
    model = resolve_model(trained.run_id, dataset=None, home=trained.home)
    again = drift_report(model, folders["fresh"], home=trained.home, seed=0)
    first = reports["fresh"]
    assert again.embedding.p_value == first.embedding.p_value
    assert again.embedding.mmd2 == first.embedding.mmd2
    assert again.classes.p_value == first.classes.p_value
    assert again.to_dict() == first.to_dict()

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 8)), rng.normal(0.3, 1.0, size=(30, 8))
    runs = [mmd_permutation_test(x, y, permutations=200, seed=s) for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0][0] == runs[2][0]  # the statistic does not depend on the seed
    far = mmd_permutation_test(x, y + 3.0, permutations=200, seed=7)
    assert far[1] == 1 / 201  # no permutation reaches a real shift


def test_cli_exits_0_without_drift_and_3_with_it(
    trained: TrainedProbe, folders: dict[str, Path]
) -> None:
    home = ["--home", str(trained.home)]
    calm = runner.invoke(app, [*home, "drift", trained.run_id, str(folders["fresh"])])
    assert calm.exit_code == 0, calm.output
    text = " ".join(calm.stdout.split())
    assert "no drift:" in text and "predicted classes" in text and "embeddings" in text
    (line,) = calm.stderr.strip().splitlines()  # the file that is no image, in one line
    assert line.startswith("skipped") and "broken.png" in line

    moved = runner.invoke(
        app, [*home, "drift", trained.run_id, str(folders["shifted"]), "--json", "--seed", "0"]
    )
    assert moved.exit_code == 3, moved.output
    data = json.loads(moved.stdout)
    assert data["drifted"] is True and data["verdict"].startswith("drift:")
    assert data["embedding"]["p_value"] < 0.01
    assert data["profile"]["shifts"][0]["name"]


def test_retrain_on_drift_needs_a_registered_model_and_starts_its_retrain(
    trained: TrainedProbe, folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsel.metalearn import retrain as retrain_module

    home = ["--home", str(trained.home)]
    by_run = runner.invoke(
        app, [*home, "drift", trained.run_id, str(folders["shifted"]), "--retrain"]
    )
    assert by_run.exit_code != 3 and "--retrain needs a registered model" in by_run.output
    assert "Traceback" not in by_run.output
    bad_budget = runner.invoke(
        app, [*home, "drift", trained.run_id, str(folders["fresh"]), "--retrain", "-b", "soon"]
    )
    assert bad_budget.exit_code != 0 and "The budget must be" in bad_budget.output
    trained.store.registry.promote("digits-drift", trained.run_id)
    started: list[tuple[str, float]] = []

    def fake_retrain(name: str, settings: object, **_: object) -> object:
        started.append((name, settings.budget_s))  # type: ignore[attr-defined]
        raise retrain_module.ConfigError("stopped here by the test")

    monkeypatch.setattr(retrain_module, "retrain", fake_retrain)
    calm = runner.invoke(app, [*home, "drift", "digits-drift", str(folders["fresh"]), "--retrain"])
    assert calm.exit_code == 0 and started == []  # no drift: no retrain
    moved = runner.invoke(
        app, [*home, "drift", "digits-drift", str(folders["shifted"]), "--retrain", "-b", "2m"]
    )
    assert started == [("digits-drift", 120.0)] and "stopped here by the test" in moved.output


def test_missing_or_empty_folders_are_one_line_errors(
    trained: TrainedProbe, tmp_path: Path
) -> None:
    home = ["--home", str(trained.home)]
    missing = runner.invoke(app, [*home, "drift", trained.run_id, str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    (line,) = missing.stderr.strip().splitlines()
    assert "does not exist" in line and "Traceback" not in missing.output
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    empty = runner.invoke(app, [*home, "drift", trained.run_id, str(tmp_path / "empty")])
    assert empty.exit_code == 2
    (line,) = empty.stderr.strip().splitlines()
    assert "holds no images" in line


def test_data_that_moved_asks_for_reference(
    trained: TrainedProbe, folders: dict[str, Path]
) -> None:
    from mlsel.metalearn.drift import reference_dataset

    moved = dataclasses.replace(trained.record, dataset="f" * 64)
    with pytest.raises(ConfigError, match="moved .* --reference PATH"):
        reference_dataset(moved, home=trained.home)
    data, notes = reference_dataset(moved, reference=trained.data, home=trained.home)
    assert data.fingerprint == trained.dataset.fingerprint
    assert "is not the dataset run" in notes[0]
    with pytest.raises(DatasetError, match="at least 5"):
        few = folders["fresh"].parent / "few"
        few.mkdir()
        for path in sorted(folders["shifted"].glob("*.png"))[:3]:
            (few / path.name).write_bytes(path.read_bytes())
        model = resolve_model(trained.run_id, dataset=None, home=trained.home)
        drift_report(model, few, home=trained.home)


def test_a_run_trained_on_a_feedback_version_finds_that_version(
    trained: TrainedProbe, tmp_path: Path
) -> None:
    """A dataset version (``NAME/vN``) is recorded in the registry, not as a profiled
    dataset: its folder is found by the run's fingerprint all the same."""
    import shutil

    from mlsel.metalearn.drift import reference_dataset
    from mlsel.profilers import read_dataset

    version_dir = tmp_path / "v2"
    shutil.copytree(trained.data, version_dir)
    next(version_dir.rglob("*.png")).unlink()  # another dataset: another fingerprint
    fingerprint = read_dataset(version_dir).fingerprint
    registry = trained.store.registry
    registry.register("digits-drift", trained.run_id)
    registry.save_dataset_version(
        "digits-drift", 2, fingerprint, str(version_dir), parent=None, lineage={}
    )
    record = dataclasses.replace(trained.record, dataset=fingerprint)
    data, notes = reference_dataset(record, home=trained.home)
    assert data.fingerprint == fingerprint and notes == ()
