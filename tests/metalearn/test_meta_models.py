"""`resolve_model`: a run id, `best` of the latest search on a dataset, a search name, an
export folder, and one line naming what was tried when nothing matches."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from mlsel.experiment_store.store import Store
from mlsel.kernel.errors import ConfigError
from mlsel.kernel.records import Config, DatasetProfile, RunResult
from mlsel.metalearn.models import resolve_model, validation_images
from mlsel.metalearn.search.study import open_study, search_dir

FINGERPRINT = "0123456789abcdef"
CONFIG = Config(backend="torchvision", arch="small_cnn", pretrained=None, finetune="full")


def _run(store: Store, score: float) -> str:
    result = RunResult(status="completed", score=score, metrics={"f1_macro": score, "n_val": 20})
    return store.log_run(FINGERPRINT, CONFIG, result)


def _search(home: Path, name: str, runs: list[tuple[str, float]]) -> None:
    study = open_study(search_dir(home, FINGERPRINT, name), create=True)
    for run_id, score in runs:
        attrs = {"config": CONFIG.to_dict(), "status": "completed", "score": score}
        study.add_trial(
            optuna.trial.create_trial(value=score, user_attrs={**attrs, "run_id": run_id})
        )


def test_models_resolve_by_run_id_best_search_name_and_export_folder(
    mlsel_home: Path, tmp_path: Path
) -> None:
    store = Store.open(mlsel_home)
    store.save_profile(
        DatasetProfile(FINGERPRINT, "classify", {"n_images": 100.0}, "test", name="toy")
    )
    weak, strong, later = _run(store, 0.5), _run(store, 0.9), _run(store, 0.7)
    _search(mlsel_home, "first", [(weak, 0.5), (strong, 0.9)])
    _search(mlsel_home, "second", [(later, 0.7)])
    latest = search_dir(mlsel_home, FINGERPRINT, "second") / "journal.log"
    latest.touch()  # the latest search is the one written last

    assert resolve_model(weak, dataset=None, home=mlsel_home).run_id == weak
    for dataset in ("toy", FINGERPRINT, FINGERPRINT[:8]):
        found = resolve_model("best", dataset=dataset, home=mlsel_home)
        assert found.run_id == later and "latest search 'second'" in found.how
    found = resolve_model("first", dataset=None, home=mlsel_home)
    assert found.run_id == strong and found.run_dir == mlsel_home / "runs" / strong
    assert resolve_model("first", dataset="toy", home=mlsel_home).run_id == strong
    # A kept probe that the search refitted on train + val is the model `best` means; the
    # run id still means the run's own model.
    final = mlsel_home / "runs" / strong / "final"
    final.mkdir(parents=True)
    (final / "model.pt").write_bytes(b"")
    refitted = resolve_model("first", dataset=None, home=mlsel_home)
    assert refitted.run_dir == final and "refitted on train + val" in refitted.how
    assert resolve_model(strong, dataset=None, home=mlsel_home).run_dir == final.parent
    note = validation_images(found, dataset=None, home=mlsel_home).notes[0]
    assert "no readable path" in note  # no path in the store: parity on synthetic images

    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"")
    (folder / "predict.py").write_text("")
    assert resolve_model(str(folder), dataset=None, home=mlsel_home).exported == folder

    with pytest.raises(ConfigError, match="`best` needs the dataset: pass --dataset"):
        resolve_model("best", dataset=None, home=mlsel_home)
    with pytest.raises(ConfigError, match="no search on dataset 'other'"):
        resolve_model("best", dataset="other", home=mlsel_home)
    with pytest.raises(ConfigError) as info:
        resolve_model("nothing", dataset=None, home=mlsel_home)
    message = str(info.value)
    assert "\n" not in message
    for tried in ("export folder", "run id", "`best` with --dataset", "search name"):
        assert tried in message
