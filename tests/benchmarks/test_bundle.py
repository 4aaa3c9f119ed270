"""The bundled corpus: tasks are real, recorded and deterministic; the harness resumes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.bundle.grid import DETECT_GRID, GRID, grid_for
from benchmarks.bundle.harness import CpuCap, done_pairs, run_corpus
from benchmarks.bundle.tasks import VAL_PER_CLASS, TaskSpec, build_task, corpus_tasks
from mlsel.experiment_store import Store
from mlsel.kernel.errors import StopRun
from mlsel.kernel.records import EpochRecord
from mlsel.metalearn.space import CandidateSpace


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


def test_the_detection_grid_has_pretrained_detectors_and_yolo_the_space_knows() -> None:
    assert grid_for("detect") == DETECT_GRID and grid_for("classify") == GRID
    assert len(DETECT_GRID) == 16 and len({c.key() for c in DETECT_GRID}) == 16
    known = {m.partition("/")[2] for m in CandidateSpace().models("detect")}
    assert {c.arch for c in DETECT_GRID} <= known
    torchvision = [c for c in DETECT_GRID if c.backend == "torchvision"]
    assert {c.arch.partition("_")[0] for c in torchvision} == {"fasterrcnn", "retinanet", "fcos"}
    assert {c.finetune for c in torchvision} == {"head", "partial", "full"}
    assert all(c.pretrained == "imagenet" and 320 <= c.image_size <= 512 for c in torchvision)
    yolo = [c for c in DETECT_GRID if c.backend == "ultralytics"]
    assert yolo and all(c.pretrained is None for c in yolo)
    default = DETECT_GRID[0]  # the single default config
    assert (default.arch, default.finetune, default.image_size) == (
        "fasterrcnn_mobilenet_v2",
        "head",
        320,
    )


def test_the_cpu_cap_stops_before_an_epoch_that_would_end_past_it() -> None:
    def burn(seconds: float) -> None:
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    record = EpochRecord(epoch=1, train_loss=1.0, score=0.5, seconds=0.0)
    cap = CpuCap(0.5)
    burn(0.1)
    cap(record)  # 0.1 s spent, one more such epoch ends at 0.2 s: go on
    burn(0.3)
    with pytest.raises(StopRun) as stop:
        cap(record)  # 0.4 s spent, the next would end at 0.7 s
    assert stop.value.status == "timeout"


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


def test_sharding_by_pair_splits_one_tasks_configs_between_processes(tmp_path) -> None:
    home, tasks = tmp_path / "home", tmp_path / "tasks"
    cheap = tuple(c for c in GRID if c.arch == "small_cnn")[:2]
    for index in (0, 1):
        counts = run_corpus(
            home,
            tasks,
            shard=(index, 2),
            by_pair=True,
            limit_tasks=1,
            configs=cheap,
            device="cpu",
            say=lambda line: None,
        )
        assert counts == {"completed": 1}
        keys = {k for (k,) in Store.open(home).sql("SELECT config_key FROM runs").iter_rows()}
        assert keys == {c.key() for c in cheap[: index + 1]}
    assert len(done_pairs(Store.open(home))) == 2
