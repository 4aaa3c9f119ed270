"""The bundled corpus: tasks are real, recorded and deterministic; the harness resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.bundle.grid import DETECT_GRID, GRID, grid_for
from benchmarks.bundle.harness import done_pairs, run_corpus
from benchmarks.bundle.tasks import (
    VAL_PER_CLASS,
    TaskSpec,
    build_task,
    corpus_tasks,
    detect_tasks,
)
from mlsel.experiment_store import Store
from mlsel.metalearn.space import CandidateSpace
from mlsel.profilers import read_dataset


def _pixels(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))])


def test_the_corpus_is_big_and_varied_and_its_grid_spans_the_space() -> None:
    tasks = corpus_tasks()
    assert len(tasks) >= 40 and len({t.name for t in tasks}) == len(tasks)
    assert {t.source for t in tasks} == {"digits", "mnist", "fashion-mnist"}
    assert {t.family for t in tasks} >= {"subset", "imbalance", "resolution", "noise", "tint"}
    sizes = [t.per_class for t in tasks if t.family == "subset"]
    assert min(sizes) == 5 and max(sizes) == 500
    assert len(GRID) >= 16 and len({c.key() for c in GRID}) == len(GRID)
    assert {c.finetune for c in GRID} == {"linear", "head", "partial", "full"}
    assert {c.augment for c in GRID} == {"none", "light", "strong"}
    assert {c.pretrained for c in GRID} == {"imagenet", None}


def test_a_task_is_written_as_recorded_and_deterministically(tmp_path) -> None:
    spec = TaskSpec("digits", "imbalance", 4, 20, {"ratio": 10}, seed=3)
    first, second = build_task(spec, tmp_path / "a"), build_task(spec, tmp_path / "b")
    record = json.loads((first / "derivation.json").read_text())
    counts = sorted(record["train_counts"].values(), reverse=True)
    assert counts[0] == 20 and counts[-1] == 2 and record["source"] == "digits"
    for cls, n in record["train_counts"].items():
        assert len(list((first / "train" / cls).glob("*.png"))) == n
        assert len(list((first / "val" / cls).glob("*.png"))) == VAL_PER_CLASS
    np.testing.assert_array_equal(_pixels(first), _pixels(second))


def test_corruptions_change_the_pixels_as_named(tmp_path) -> None:
    plain = _pixels(build_task(TaskSpec("mnist", "subset", 2, 5, seed=1), tmp_path) / "val")
    for family, params in (
        ("contrast", {"factor": 0.3}),
        ("tint", {"colour": "orange"}),
        ("noise", {"sigma": 60}),
    ):
        spec = TaskSpec("mnist", family, 2, 5, params, seed=1)
        images = _pixels(build_task(spec, tmp_path) / "val")
        if family == "contrast":  # same images, a third of the spread
            assert images.std() < 0.5 * plain.std()
        elif family == "tint":
            assert images.ndim == 4 and images.shape[-1] == 3
            strokes = plain > 128  # same picks as the plain task: the digit turns orange
            red, blue = (images[..., c][strokes].astype(int) for c in (0, 2))
            assert (red > blue + 50).all()
        else:
            assert np.abs(images.astype(int) - plain.astype(int)).mean() > 10


def test_detection_tasks_box_exactly_the_ink_of_each_pasted_object(tmp_path) -> None:
    spec = detect_tasks()[1]
    dataset = read_dataset(build_task(spec, tmp_path))
    assert dataset.task == "detect" and dataset.num_classes == spec.classes
    record = json.loads((tmp_path / spec.name / "derivation.json").read_text())
    assert sum(len(item.boxes) for item in dataset.items) == record["objects"] > 60
    assert len(dataset.split("val")) == record["val_images"] > 0
    side = spec.params["canvas"]
    for item in dataset.items[:10]:
        pixels = np.asarray(Image.open(item.path)).astype(int)
        inside = np.zeros_like(pixels, dtype=bool)
        for box in item.boxes:
            cx, cy, w, h = (v * side for v in box[1:])
            left, top = round(cx - w / 2), round(cy - h / 2)
            right, bottom = round(cx + w / 2), round(cy + h / 2)
            inside[top:bottom, left:right] = True
            ink = pixels[top:bottom, left:right] > 32
            # tight: ink on every edge of the box
            assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()
        assert (pixels[~inside] <= 32).all()  # no ink outside the boxes


def test_detection_tasks_get_yolo_configs_the_space_knows() -> None:
    assert grid_for("detect") == DETECT_GRID and grid_for("classify") == GRID
    known = {m.partition("/")[2] for m in CandidateSpace().models("detect")}
    assert {c.arch for c in DETECT_GRID} <= known
    assert {c.backend for c in DETECT_GRID} == {"ultralytics"}


def test_the_harness_logs_bundled_runs_and_resumes(tmp_path) -> None:
    home, tasks = tmp_path / "home", tmp_path / "tasks"
    cheap = tuple(c for c in GRID if c.arch == "small_cnn")[:2]
    lines: list[str] = []
    counts = run_corpus(home, tasks, limit_tasks=1, configs=cheap, device="cpu", say=lines.append)
    assert counts == {"completed": 2} and len(lines) == 2
    store = Store.open(home)
    runs = store.runs_frame()
    assert runs.height == 2 and set(runs["source"]) == {"bundled"}
    assert len(done_pairs(store)) == 2
    assert store.datasets_frame()["name"].to_list() == [corpus_tasks()[0].name]
    again = run_corpus(home, tasks, limit_tasks=1, configs=cheap, device="cpu", say=lines.append)
    assert again == {} and Store.open(home).runs_frame().height == 2
