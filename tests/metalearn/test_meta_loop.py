"""The retraining loop end to end on real digits, through the commands a user types:

1. a champion trained on part of the data and promoted;
2. `mlsel predict NAME NEW --log` on images it has not seen;
3. `mlsel feedback export` of the hard examples, labelled with the ground truth, and
   `mlsel feedback import` into a new dataset version;
4. a retrain whose challenger is promoted;
5. labels shuffled: the challenger is refused and the champion is unchanged;
6. `mlsel models rollback` restores the previous champion.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.experiment_store import Store
from mlsel.kernel.records import Config
from mlsel.metalearn.retrain import retrain
from mlsel.metalearn.search import SearchSettings
from mlsel.profilers import read_dataset, write_sample
from mlsel.trainers import train

runner = CliRunner()

PROBE = Config(
    backend="torchvision",
    arch="efficientnet_lite0",
    finetune="linear",
    image_size=64,
    epochs=1,
    augment="none",
)


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _split(source: Path, champion: Path, new: Path) -> dict[str, str]:
    """Of each class: 6 images into ``champion/train/``, 25 into ``champion/val/``, the
    rest into ``new`` (flat, unlabelled); returns each new file's true label."""
    truth: dict[str, str] = {}
    new.mkdir()
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        files = sorted(folder.iterdir())
        for split, chosen in (("train", files[:6]), ("val", files[6:31])):
            (champion / split / folder.name).mkdir(parents=True)
            for path in chosen:
                shutil.copy(path, champion / split / folder.name / path.name)
        for path in files[31:]:
            target = new / f"{folder.name}-{path.name}"
            shutil.copy(path, target)
            truth[str(target.resolve())] = folder.name
    return truth


def _label(export: Path, truth: dict[str, str], *, shuffle: bool = False) -> int:
    """Move every exported file from unsure/ into its class folder (the true class, or a
    shuffled one), as a person would; returns how many were moved."""
    with open(export / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labels = [truth[str(Path(row["original"]).resolve())] for row in rows]
    if shuffle:
        random.Random(0).shuffle(labels)
    for row, label in zip(rows, labels, strict=True):
        shutil.move(export / row["file"], export / label / Path(row["file"]).name)
    return len(rows)


def _settings() -> SearchSettings:
    return SearchSettings(budget_s=300, gpus="cpu", warm_start=False, max_trials=1, seed=0)


def test_the_loop_promotes_real_gains_refuses_noise_and_rolls_back(
    tmp_path: Path, mlsel_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSEL_NO_BUNDLED", "1")
    source = write_sample("digits", tmp_path / "digits", per_class=61, seed=0)
    truth = _split(source, tmp_path / "champion", tmp_path / "new")

    # 1. a champion trained on 6 images a class of 10 digits (25 more to validate), promoted
    dataset = read_dataset(tmp_path / "champion")
    store = Store.open(mlsel_home)
    first_run, _ = train(dataset, PROBE, store=store, device="cpu")
    _invoke("models", "promote", "digits", first_run)

    # 2. it predicts 300 new images, logged
    predicted = json.loads(_invoke("predict", "digits", str(tmp_path / "new"), "--log", "--json"))
    assert len(predicted) == len(truth) == 300
    logged = store.predictions_frame("digits")
    assert logged.height == 300 and set(logged["model_version"]) == {1}

    # 3. its 200 hardest, labelled with the truth, become dataset version v1
    export = tmp_path / "label-1"
    _invoke("feedback", "export", "digits", str(export), "--limit", "200", "--strategy", "margin")
    assert len(list((export / "unsure").iterdir())) == 200
    assert _label(export, truth) == 200
    imported = json.loads(_invoke("feedback", "import", "digits", str(export), "--json"))
    assert imported["ref"] == "digits/v1" and imported["held_out"] == 40

    # 4. the challenger trained on v1 is promoted over the champion
    promoted = retrain("digits", _settings(), home=mlsel_home, latency=lambda _: 4.0)
    assert promoted.promoted, promoted.decision
    assert promoted.data == "digits/v1" and promoted.champion.n_images == 40 + len(
        dataset.split("val")
    )
    assert promoted.challenger is not None
    assert promoted.challenger.macro_f1 >= promoted.champion.macro_f1 + 0.01
    champion = store.registry.get("digits")
    assert (champion.version, champion.parent, champion.dataset_version) == (2, 1, "digits/v1")

    # 5. 100 more, labelled at random: the challenger is refused, the champion stays
    export = tmp_path / "label-2"
    _invoke("feedback", "export", "digits", str(export), "--limit", "100", "--strategy", "margin")
    assert _label(export, truth, shuffle=True) == 100
    _invoke("feedback", "import", "digits", str(export))
    refused = retrain("digits", _settings(), home=mlsel_home, latency=lambda _: 4.0)
    assert not refused.promoted and refused.data == "digits/v2"
    assert "min_gain" in refused.decision and "stays digits@v2" in refused.decision
    assert store.registry.get("digits").version == 2
    assert store.registry.get("digits", "challenger").version == 3

    # 6. rollback: the first champion again
    rolled = _invoke("models", "rollback", "digits")
    assert "rolled back from v2 to digits@v1" in " ".join(rolled.split())
    assert store.registry.get("digits").run_id == first_run
    listed = {row["ref"]: row for row in json.loads(_invoke("models", "--json"))}
    assert listed["digits@v1"]["aliases"] == ["champion"]
    assert listed["digits@v3"]["dataset_version"] == "digits/v2"
