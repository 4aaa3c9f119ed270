"""The detection benchmark's parts that need no training: its arms are valid configs, the
deadline stops before an epoch would end past the budget, test truth comes out of the YOLO labels
in pixels (the evaluator gives it 1.0), and the targets say met, not met or not run."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import detect
from benchmarks.detect_tasks import EASIEST, TASKS
from mlsel.kernel.dataset import DatasetItem
from mlsel.kernel.errors import StopRun
from mlsel.kernel.records import EpochRecord
from mlsel.trainers import check_config


@pytest.mark.parametrize("arm", [a for a in detect.ARMS if a != "search"])
def test_every_arm_is_a_valid_320_px_config(arm: str) -> None:
    config = detect.arm_config(arm, num_classes=2)
    check_config(config)
    assert config.image_size == 320 and config.epochs >= 50
    assert (config.pretrained is None) == (arm == "scratch")


def test_deadline_stops_before_an_epoch_that_would_end_past_the_budget() -> None:
    deadline = detect.Deadline(100.0)
    deadline.start -= 40.0  # 40 s gone: one more 40 s epoch ends at 80
    deadline(EpochRecord(epoch=1, seconds=40.0))
    deadline.start -= 30.0  # 70 s gone: one more 25 s epoch ends at 95, within
    deadline(EpochRecord(epoch=2, seconds=25.0))
    deadline.start -= 20.0  # 90 s gone: one more 20 s epoch would end at 110
    with pytest.raises(StopRun):
        deadline(EpochRecord(epoch=3, seconds=20.0))
    assert deadline.stopped_at == pytest.approx(90.0, abs=1.0)


def test_truth_is_in_pixels_and_scores_one() -> None:
    pytest.importorskip("pycocotools")
    import numpy as np

    from mlsel.trainers.detection.coco import coco_metrics

    items = [
        DatasetItem("a.jpg", "", "test", boxes=((1, 0.5, 0.25, 0.5, 0.1),), width=200, height=100),
        DatasetItem("b.jpg", "", "test", boxes=(), width=64, height=64),
    ]
    truth = detect.truth(items)
    np.testing.assert_allclose(truth[0][0], [[50.0, 20.0, 150.0, 30.0]])
    assert truth[0][1].tolist() == [1] and truth[1][0].shape == (0, 4)
    perfect = [(boxes, np.ones(len(boxes)), labels) for boxes, labels in truth]
    sizes = [(item.width, item.height) for item in items]
    assert coco_metrics(truth, perfect, ("x", "y"), sizes)["map"] == pytest.approx(1.0)


def _arm(test_map: float, test_map50: float) -> dict[str, Any]:
    return {
        "test_map": test_map,
        "test_map50": test_map50,
        "val_map": test_map,
        "train_seconds": 290.0,
        "wall_seconds": 301.0,
        "epochs": 3,
        "load_before": (2.0, 2.0, 2.0),
        "load_after": (3.0, 2.5, 2.1),
    }


def test_targets_say_met_not_met_or_not_run() -> None:
    assert set(detect.targets({}).values()) == {"not run"}
    one = {"tasks": {EASIEST: {"arms": {"pretrained": _arm(0.4, 0.7), "scratch": _arm(0.1, 0.2)}}}}
    ahead, easiest, _ = detect.targets(one).values()
    assert ahead.startswith("met on the 1 task(s) run") and easiest.startswith("met")
    every = {name: one["tasks"][EASIEST] for name in TASKS}
    assert list(detect.targets({"tasks": every}).values())[0] == "met"
    behind = {"pretrained": _arm(0.1, 0.3), "scratch": _arm(0.2, 0.4)}
    verdicts = list(detect.targets({"tasks": {**every, EASIEST: {"arms": behind}}}).values())
    assert verdicts[0] == f"not met: behind on {EASIEST}" and verdicts[1].startswith("not met")
    table = detect.markdown(one)
    assert f"| {EASIEST} (easiest) | pretrained | 0.400 | 0.700 |" in table


def test_the_search_target_compares_mlsel_run_with_the_default_config() -> None:
    level = {"pretrained": _arm(0.4, 0.7), "search": _arm(0.4, 0.72)}
    every = {name: {"arms": level} for name in TASKS}
    assert list(detect.targets({"tasks": every}).values())[2] == "met"
    first = next(name for name in TASKS if name != EASIEST)
    partial = {first: {"arms": level}}
    assert list(detect.targets({"tasks": partial}).values())[2].startswith("met on the 1 task")
    worse = {**every, EASIEST: {"arms": {**level, "search": _arm(0.39, 0.7)}}}
    assert list(detect.targets({"tasks": worse}).values())[2] == f"not met: behind on {EASIEST}"
    assert f"| {first} | search | 0.400 | 0.720 |" in detect.markdown({"tasks": partial})


def test_processes_side_by_side_merge_their_arms_into_one_file(tmp_path) -> None:
    import json

    about = {"summary": "s", "seed": 0, "classes": ["a"], "sizes": {}}
    a_task, b_task = EASIEST, next(name for name in TASKS if name != EASIEST)
    # two processes, each with its own task, alternate their writes
    detect.update(
        tmp_path, lambda r: detect._record(a_task, "pretrained", about, _arm(0.4, 0.7), r)
    )
    detect.update(
        tmp_path, lambda r: detect._record(b_task, "pretrained", about, _arm(0.2, 0.5), r)
    )
    detect.update(tmp_path, lambda r: detect._record(a_task, "scratch", about, _arm(0.1, 0.2), r))
    saved = json.loads((tmp_path / "detect.json").read_text())
    assert set(saved["tasks"]) == {a_task, b_task}
    assert set(saved["tasks"][a_task]["arms"]) == {"pretrained", "scratch"}
    assert saved["tasks"][b_task]["arms"]["pretrained"]["test_map"] == 0.2
    # an arm measured with another seed starts the task over
    other = {**about, "seed": 1}
    detect.update(tmp_path, lambda r: detect._record(a_task, "scratch", other, _arm(0.1, 0.2), r))
    saved = json.loads((tmp_path / "detect.json").read_text())
    assert set(saved["tasks"][a_task]["arms"]) == {"scratch"}
    assert "| " in (tmp_path / "detect.md").read_text()


def test_the_search_arm_reads_a_view_without_the_test_split(tmp_path) -> None:
    from benchmarks.detect_run import fit_view

    task = tmp_path / "task"
    for kind in ("images", "labels"):
        for split in ("train", "val", "test"):
            (task / kind / split).mkdir(parents=True)
    (task / "data.yaml").write_text(
        f"path: {task}\ntrain: images/train\nval: images/val\ntest: images/test\n"
        "names:\n  0: face\n  1: car\n"
    )
    view = fit_view(task, tmp_path / "view")
    assert sorted(p.name for p in (view / "images").iterdir()) == ["train", "val"]
    assert (view / "labels" / "val").resolve() == (task / "labels" / "val").resolve()
    text = (view / "data.yaml").read_text()
    assert "test:" not in text and "  1: car" in text and f"path: {view.resolve()}" in text


def test_the_search_arms_home_has_every_bundled_run_but_the_tasks(tmp_path) -> None:
    import polars as pl

    from benchmarks.detect_run import loto_home
    from mlsel.experiment_store import Store
    from mlsel.metalearn.bundled import bundled_file

    shipped = pl.read_parquet(bundled_file()).filter(pl.col("kind") == "run")
    held = shipped["dataset"][0]
    seeding = loto_home(tmp_path / "home", held)
    assert seeding["runs_left_out"] == (shipped["dataset"] == held).sum() > 0
    assert seeding["runs_seeded"] == shipped.height - seeding["runs_left_out"]
    assert seeding["ranker_active"]
    store = Store.open(tmp_path / "home")
    datasets = set(store.training_frame()["dataset"].to_list())
    assert held not in datasets and len(datasets) == shipped["dataset"].n_unique() - 1
