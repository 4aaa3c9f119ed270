"""The detection benchmark's ``search`` arm: ``mlsel run --budget`` as a new user runs it.

The arm's home is fresh, seeded with the shipped bundled runs minus every run of the task
at hand (its corpus runs were made on the same images), then refitted: the ranker that
picks the search's first configs has never seen this task, as with a user's own data.
``mlsel run`` reads a view of the task without its test split (links to train and val),
and its exported best model is scored on test by the evaluator the other arms share.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.cli_run import mlsel_json

if TYPE_CHECKING:
    from mlsel.kernel.dataset import Dataset

__all__ = ["fit_view", "loto_home", "run_search_arm"]


def fit_view(folder: Path, view: Path) -> Path:
    """A YOLO dataset at ``view`` with the train and val splits of ``folder`` (links)."""
    shutil.rmtree(view, ignore_errors=True)
    for kind in ("images", "labels"):
        (view / kind).mkdir(parents=True)
        for split in ("train", "val"):
            (view / kind / split).symlink_to((folder / kind / split).resolve())
    names = (folder / "data.yaml").read_text().split("names:", 1)[1]
    (view / "data.yaml").write_text(
        f"path: {view.resolve()}\ntrain: images/train\nval: images/val\nnames:{names}"
    )
    return view


def loto_home(home: Path, held_out: str) -> dict[str, Any]:
    """Seed a new store at ``home`` with the shipped runs of every dataset but
    ``held_out`` (a fingerprint) and fit its first ranker; returns what seeding did."""
    from mlsel.experiment_store import Store
    from mlsel.metalearn.bundled import bundled_file, seed_bundled

    shipped = bundled_file()
    if shipped is None:
        raise RuntimeError("this install ships no bundled runs (data_cards/bundled/runs.parquet)")
    with tempfile.TemporaryDirectory(prefix="mlsel-loto-") as tmp:
        everything = Store.open(Path(tmp) / "all")
        everything.import_file(shipped)
        held = everything.sql(f"SELECT count(*) AS n FROM runs WHERE dataset = '{held_out}'")
        filtered = Path(tmp) / "runs.parquet"
        counts = everything.export_parquet(filtered, exclude_datasets=[held_out])
        # the benchmark turns bundled seeding off for its other arms' homes
        saved = os.environ.pop("MLSEL_NO_BUNDLED", None)
        try:
            seeded = seed_bundled(Store.open(home), home=home, path=filtered)
        finally:
            if saved is not None:
                os.environ["MLSEL_NO_BUNDLED"] = saved
    if seeded is None:
        raise RuntimeError(f"the home {home} was seeded before: give a new folder")
    return {
        "runs_left_out": int(held["n"][0]),
        "runs_seeded": counts["run"],
        "ranker": seeded.refit_version,
        "ranker_active": seeded.refit_activated,
        "note": seeded.note,
    }


def run_search_arm(
    dataset: Dataset, folder: Path, work: Path, seconds: float, score_test: Any
) -> dict[str, Any]:
    """``mlsel run <train+val view> --budget <seconds>s --gpus cpu`` in a leave-this-task-out
    home under ``work``; its best model scored on test with ``score_test(dataset, config,
    model_dir)``. Raises ``RuntimeError`` (one line) when the command fails."""
    from mlsel.kernel.records import Config

    shutil.rmtree(work, ignore_errors=True)
    home = work / "home"
    seeding = loto_home(home, dataset.fingerprint)
    view = fit_view(folder, work / "fit")
    best = work / "best"
    budget = f"{int(seconds)}s"
    report, wall = mlsel_json(
        ["run", str(view), "--budget", budget, "--gpus", "cpu", "--output", str(best)],
        home,
        fresh=False,
    )
    if report["best"] is None:
        raise RuntimeError("mlsel run finished no trial")
    config = Config.from_dict(report["best"]["config"])
    coco = score_test(dataset, config, best)
    board = report["leaderboard"]
    return {
        "seeding": seeding,
        "status": report["stop_reason"],
        "epochs": len(board),  # trials on the leaderboard
        "train_seconds": sum(row["seconds"] or 0.0 for row in board),
        "wall_seconds": round(wall, 1),
        "val_map": report["best"]["score"],
        "best_config": config.to_dict(),
        "trials": report["trials"],
        "leaderboard": board,
        "test_map": coco["map"],
        "test_map50": coco["map50"],
        "test_map75": coco["map75"],
        "test_per_class_ap": coco["per_class_ap"],
    }
