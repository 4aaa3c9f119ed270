"""The report's detection section: leave one detection task out, with the picks named."""

from __future__ import annotations

import polars as pl

from benchmarks.report_detect import DETECT_METHODS, detect_section
from mlsel.experiment_store import Store
from mlsel.metalearn.synthetic import synthetic_detection_runs, synthetic_runs


def _fill(store: Store, runs) -> None:  # noqa: ANN001
    rows = []
    for profile, config, result in runs:
        store.save_profile(profile)
        rows.append((profile.fingerprint, config, result))
    store.log_runs(rows)


def test_the_detection_section_holds_out_each_detection_task(tmp_path) -> None:
    store = Store.open(tmp_path)
    _fill(store, synthetic_runs(8))
    _fill(store, synthetic_detection_runs(4))
    frame = store.training_frame()
    text, data = detect_section(frame)
    assert "24 detection runs on 4 tasks" in text
    assert data["n_datasets"] == 4 and data["folds"] == 4
    assert set(data["summary"]) == set(DETECT_METHODS)
    # each held-out task gets a row naming the ranker's pick and the best config there
    for d in range(4):
        assert f"| synthetic-detect-{d} | 6 |" in text
    best = data["picks"]["synthetic-detect-0"][2]
    assert best.startswith("fasterrcnn_mobilenet_v2 head 320 px lr 0.003")


def test_the_detection_section_says_when_there_are_too_few_tasks(tmp_path) -> None:
    store = Store.open(tmp_path)
    _fill(store, synthetic_runs(4))
    text, data = detect_section(store.training_frame())
    assert text.startswith("Not measured yet: the corpus holds 0 detection tasks") and data == {}
    assert isinstance(store.training_frame(), pl.DataFrame)
