"""`mlsel feedback export` / `import`: hard examples out, labelled images in, as versions.

The champion is a completed run registered by hand on real digits (no training: the
uncertainty strategies only read the prediction log, which is filled with rows of known
probabilities); label-issues embeds real digits with the shipped EfficientNet-Lite0.
"""

from __future__ import annotations

import csv
import json
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.experiment_store import PredictionRow, Store
from mlsel.kernel.errors import ConfigError
from mlsel.kernel.records import Config, DatasetProfile, RunResult
from mlsel.metalearn._feedback_export import rank_predictions
from mlsel.metalearn._feedback_import import holdout_split
from mlsel.metalearn._label_issues import find_label_issues
from mlsel.metalearn.feedback import (
    MANIFEST,
    UNSURE,
    export_feedback,
    file_hash,
    import_feedback,
)
from mlsel.profilers import read_dataset, write_sample

NAME = "digits"
PROBE = Config(
    backend="torchvision", arch="efficientnet_lite0", finetune="linear", image_size=32, epochs=1
)


def champion(home: Path, data: Path, config: Config = PROBE) -> Store:
    """A completed run on ``data`` (its classes.json written), promoted to NAME@champion."""
    dataset = read_dataset(data)
    store = Store.open(home)
    store.save_profile(
        DatasetProfile(
            fingerprint=dataset.fingerprint,
            task="classify",
            features={"n_images": float(len(dataset.items))},
            profiler_version="test",
            name=dataset.name,
            path=str(data),
        )
    )
    run_id = store.start_run(dataset.fingerprint, config)
    folder = home / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "classes.json").write_text(json.dumps(list(dataset.classes)))
    store.finish_run(run_id, RunResult(status="completed", score=0.5, artifact_dir=str(folder)))
    store.registry.promote(NAME, run_id)
    return store


def log(store: Store, images: list[Path], classes: list[str], seed: int = 0) -> None:
    """One logged prediction per image, with random (seeded) probabilities."""
    rng = np.random.default_rng(seed)
    rows = []
    for path in images:
        p = rng.dirichlet(np.ones(len(classes)))
        top = np.argsort(-p)
        rows.append(
            PredictionRow(
                prediction_id=uuid.uuid4().hex,
                model=NAME,
                image_hash=file_hash(path),
                label=classes[top[0]],
                confidence=float(p[top[0]]),
                top_k=tuple((classes[i], float(p[i])) for i in top[:2]),
                probabilities=tuple(float(x) for x in p),
                classes=tuple(classes),
                model_version=1,
                path=str(path),
            )
        )
    store.log_predictions(rows)


def manifest_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def label_all(folder: Path, truth: dict[str, str], keep: int = 0) -> int:
    """Move every exported file but ``keep`` into its true class folder (by its hash)."""
    files = sorted((folder / UNSURE).iterdir())
    for path in files[keep:]:
        shutil.move(path, folder / truth[file_hash(path)] / path.name)
    return len(files) - keep


@pytest.fixture
def world(tmp_path: Path, mlsel_home: Path) -> tuple[Store, dict[str, str], Path]:
    """A champion on 3 digit classes and 90 logged predictions of other digits."""
    train = write_sample("digits", tmp_path / "train", classes=3, per_class=15, seed=0)
    pool = write_sample("digits", tmp_path / "pool", classes=3, per_class=30, seed=1)
    store = champion(mlsel_home, train)
    images = sorted(pool.rglob("*.png"))
    log(store, images, ["0", "1", "2"])
    truth = {file_hash(p): p.parent.name for p in images}
    return store, truth, tmp_path


def test_strategies_order_rows_as_defined(mlsel_home: Path) -> None:
    store = Store.open(mlsel_home)
    vectors = {
        "a": (0.5, 0.3, 0.2),
        "b": (0.45, 0.45, 0.1),
        "c": (0.9, 0.05, 0.05),
        "d": (0.34, 0.33, 0.33),
    }
    rows = [
        PredictionRow(uuid.uuid4().hex, "m", h, "x", max(p), (("x", max(p)),), p, ("x", "y", "z"))
        for h, p in vectors.items()
    ]
    # only its top 1 kept: the rest (0.4) counts as one more class
    rows.append(PredictionRow(uuid.uuid4().hex, "m", "e", "x", 0.6, (("x", 0.6),)))
    store.log_predictions(rows)
    frame = store.predictions_frame(model="m")

    def order(strategy: str) -> list[str]:
        return [row["image_hash"] for row, _ in rank_predictions(frame, strategy)]

    assert order("least-confident") == ["d", "b", "a", "e", "c"]
    assert order("margin") == ["b", "d", "e", "a", "c"]  # 0, .01, .2, .2 (a < e by hash)
    assert order("entropy") == ["d", "a", "b", "e", "c"]
    scores = dict((row["image_hash"], s) for row, s in rank_predictions(frame, "margin"))
    assert scores["e"] == pytest.approx(0.2) and scores["b"] == pytest.approx(0.0)
    # random: a seeded draw per image, whatever the probabilities, the same for a seed
    draws = [
        [row["image_hash"] for row, _ in rank_predictions(frame, "random", seed)]
        for seed in (1, 1, 2, 3, 4)
    ]
    assert draws[0] == draws[1] and sorted(draws[0]) == ["a", "b", "c", "d", "e"]
    assert len({tuple(d) for d in draws}) > 2


def test_holdout_is_a_fifth_of_the_batch_stratified_and_seeded() -> None:
    entries = [(f"h{i:03d}", "ab"[i % 2]) for i in range(20)] + [("x1", "c")]
    held = holdout_split(entries, 0.2, seed=0)
    assert len(held) == 4  # round(0.2 * 21)
    assert {label for h, label in entries if h in held} == {"a", "b"}
    assert held == holdout_split(list(reversed(entries)), 0.2, seed=0)
    assert held != holdout_split(entries, 0.2, seed=1)


def test_cluster_margin_exports_the_hardest_of_each_cluster(
    world: tuple[Store, dict[str, str], Path],
) -> None:
    store, truth, tmp = world
    hardest = export_feedback(NAME, tmp / "margin", limit=25, strategy="margin")
    pool = [r["image_hash"] for r in hardest.rows]  # the 25 lowest margins, in order
    report = export_feedback(NAME, tmp / "diverse", limit=5, strategy="cluster-margin", seed=0)
    chosen = [r["image_hash"] for r in report.rows]
    assert len(chosen) == 5 and set(chosen) <= set(pool)
    assert chosen[0] == pool[0]  # the hardest image always heads its cluster
    assert chosen != pool[:5]  # not the plain margin order: one per cluster
    assert any("cluster-margin: the 25 lowest-margin images" in note for note in report.notes)
    again = export_feedback(NAME, tmp / "again", limit=5, strategy="cluster-margin", seed=0)
    assert [r["image_hash"] for r in again.rows] == chosen
    assert {r["strategy"] for r in report.rows} == {"cluster-margin"}
    assert len({truth[h] for h in chosen}) >= 2


def test_export_writes_the_labelling_folder(world: tuple[Store, dict[str, str], Path]) -> None:
    store, truth, tmp = world
    out = tmp / "label"
    report = export_feedback(NAME, out, limit=10, strategy="margin")
    files = sorted((out / UNSURE).iterdir())
    rows = manifest_rows(out / MANIFEST)
    assert report.exported == len(files) == len(rows) == 10
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["0", "1", "2", MANIFEST, "README.txt", UNSURE]
    )
    assert not any(any((out / c).iterdir()) for c in "012")
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores)  # margin: the closest calls first
    for row in rows:
        path = out / row["file"]
        assert path.name.startswith(row["image_hash"][:12] + "-")
        assert file_hash(path) == row["image_hash"] and row["source"] == "path"
        assert row["strategy"] == "margin" and row["model"] == f"{NAME}@v1"
    # the training images are never exported (the pool shares some with it)
    trained = {i.digest for i in read_dataset(tmp / "train").items}
    assert not trained & {r["image_hash"] for r in rows}
    assert report.excluded["trained_on"] == len(trained & set(truth))
    # a row whose bytes are gone is skipped, and counted
    gone = Path(rows[0]["original"])
    gone.unlink()
    again = export_feedback(NAME, out, limit=10, strategy="margin")
    assert again.excluded["gone"] == 1 and rows[0]["image_hash"] not in {
        r["image_hash"] for r in again.rows
    }
    with pytest.raises(ConfigError, match="not an earlier feedback export"):
        export_feedback(NAME, tmp / "train", limit=5)
    with pytest.raises(ConfigError, match="no version 2"):
        export_feedback(NAME, tmp / "other", model_version=2)
    with pytest.raises(ConfigError, match="no model named 'cats'"):
        export_feedback("cats", tmp / "other")


def test_import_makes_versions_with_held_out_batches(
    world: tuple[Store, dict[str, str], Path],
) -> None:
    store, truth, tmp = world
    out = tmp / "label"
    base = read_dataset(tmp / "train")
    export_feedback(NAME, out, limit=12)
    label_all(out, truth, keep=2)  # two stay in unsure/: not imported
    with pytest.raises(ConfigError, match="10 labelled file.* not imported yet"):
        export_feedback(NAME, out, limit=5)
    first = import_feedback(NAME, out)
    assert first.version == 1 and sum(first.new.values()) == 10 and first.held_out == 2
    v1 = Path(first.path or "")
    assert v1 == store.path.parent / "datasets" / NAME / "v1"
    with open(v1 / "manifest.csv") as handle:
        assert handle.readline().strip() == "path,label,split,origin,image_hash"
    read = read_dataset(v1)
    assert read.fingerprint == first.fingerprint == read_dataset(v1).fingerprint
    assert store.registry.dataset_version(NAME, 1).fingerprint == first.fingerprint
    assert len(read.items) == len(base.items) + 10
    # the originals keep their split; 2 of the 10 new ones are held out
    val = {i.path for i in read.split("val")}
    assert {i.path for i in base.split("val")} <= val and len(val) == len(base.split("val")) + 2
    lineage = json.loads((v1 / "lineage.json").read_text())
    assert lineage["base"]["fingerprint"] == base.fingerprint and lineage["model"] == f"{NAME}@v1"
    assert lineage["counts"]["held_out"] == 2 and lineage["counts"]["left_in_unsure"] == 2
    held = set(lineage["holdout"]["ids"])
    assert {i.digest for i in read.split("val")} >= held and len(held) == 2
    assert all(i.label == truth[i.digest] for i in read.items if i.digest in truth)
    # the same batch again: a no-op that says so
    again = import_feedback(NAME, out)
    assert not again.imported and "imported already" in again.notes[0]
    # a second batch, exported into the same folder: v2 keeps v1's val, adds its own
    second_export = export_feedback(NAME, out, limit=10)
    assert not {r["image_hash"] for r in second_export.rows} & {i.digest for i in read.items}
    label_all(out, truth)
    second = import_feedback(NAME, out)
    assert second.version == 2 and second.held_out == 2 and second.base == f"{NAME}/v1"
    v2 = read_dataset(second.path or "")
    assert val <= {i.path for i in v2.split("val")}
    assert len(v2.items) == len(read.items) + 10
    assert store.registry.dataset_version(NAME, 2).parent == first.fingerprint


def test_a_folder_that_is_not_a_class_is_a_one_line_error(
    world: tuple[Store, dict[str, str], Path],
) -> None:
    store, truth, tmp = world
    out = tmp / "label"
    export_feedback(NAME, out, limit=3)
    (out / "seven").mkdir()
    moved = next((out / UNSURE).iterdir())
    shutil.move(moved, out / "seven" / moved.name)
    result = CliRunner().invoke(app, ["feedback", "import", NAME, str(out)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "seven" in lines[0] and "--allow-new-classes" in lines[0]
    assert not (store.path.parent / "datasets" / NAME).exists()
    made = import_feedback(NAME, out, allow_new_classes=True)
    assert made.new == {"seven": 1} and "seven" in read_dataset(made.path or "").classes


def test_cli_export_then_import(world: tuple[Store, dict[str, str], Path]) -> None:
    _, truth, tmp = world
    out = tmp / "label"
    runner = CliRunner()
    exported = runner.invoke(app, ["feedback", "export", NAME, str(out), "--limit", "5"])
    assert exported.exit_code == 0, exported.output
    assert "exported 5 image(s)" in exported.output and "feedback import" in exported.output
    nothing = runner.invoke(app, ["feedback", "import", NAME, str(out)])
    assert nothing.exit_code == 2 and "No labelled image" in nothing.output
    label_all(out, truth)
    made = runner.invoke(app, ["feedback", "import", NAME, str(out), "--json"])
    assert made.exit_code == 0, made.output
    report = json.loads(made.output)
    assert report["ref"] == f"{NAME}/v1" and report["held_out"] == 1
    assert sum(report["new"].values()) == 5


def test_find_label_issues_on_known_probabilities() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.1, 0.9], [0.75, 0.25]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    # thresholds: t0 = mean(.9, .8, .3) = .667, t1 = mean(.8, .9, .25) = .65; items 5 and 2
    # are below their own class's and above the other's (lowest self-confidence first)
    assert find_label_issues(probs, labels) == [(5, 0), (2, 1)]
    # an item below its own threshold but above no other is not an issue
    assert (
        find_label_issues(np.array([[0.6, 0.4], [0.9, 0.1], [0.5, 0.5]]), np.array([0, 0, 1])) == []
    )


def test_label_issues_find_flipped_labels(tmp_path: Path, mlsel_home: Path) -> None:
    # MNIST rather than scikit-learn's 8x8 digits: through an ImageNet backbone those give
    # out-of-sample probabilities too noisy to tell a flipped label from a hard digit
    data = write_sample("mnist", tmp_path / "digits", classes=4, per_class=50, seed=3)
    flipped = sorted((data / "0").iterdir())[:5]  # 10 % of the zeros labelled 2
    for path in flipped:
        shutil.move(path, data / "2" / path.name)
    store = champion(mlsel_home, data, replace(PROBE, image_size=64))
    out = tmp_path / "issues"
    report = export_feedback(NAME, out, limit=10, strategy="label-issues")
    train = {i.path for i in read_dataset(data).split("train")}
    planted = {str(data / "2" / p.name) for p in flipped} & train
    found = [r for r in report.rows if r["original"] in planted]
    assert len(planted) >= 3 and len(found) >= len(planted) - 1, (planted, report.rows)
    assert all(r["given_label"] == "2" and r["suggested_label"] == "0" for r in found)
    assert sorted(float(r["score"]) for r in report.rows) == [
        float(r["score"]) for r in report.rows
    ]
    # put them back where they belong: the new version relabels those training items
    for row in found:
        shutil.move(out / row["file"], out / "0" / Path(row["file"]).name)
    made = import_feedback(NAME, out)
    assert made.relabelled == len(found) and sum(made.new.values()) == 0
    labels = {i.path: i.label for i in read_dataset(made.path or "").items}
    assert all(labels[r["original"]] == "0" for r in found)
    assert store.registry.dataset_version(NAME, 1).lineage["counts"]["relabelled"] == len(found)
