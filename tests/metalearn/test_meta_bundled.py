"""Seeding a new store with the bundled experience: once, optional, and it fits a ranker."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.experiment_store import Store
from mlsel.metalearn import bundled
from mlsel.metalearn.synthetic import synthetic_runs


@pytest.fixture()
def export_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An mlsel export of synthetic runs on 12 datasets, logged as bundled.

    The run ids are fixed, as in the shipped export: the ranker's rows are ordered by run
    id, and on 12 synthetic datasets a reordering can move it either side of the rules.
    """
    from itertools import count

    from mlsel.experiment_store import store as store_module

    ids = count()
    monkeypatch.setattr(store_module, "new_run_id", lambda: f"{next(ids):016x}")
    store = Store.open(tmp_path / "maker")
    rows, seen = [], set()
    for profile, config, result in synthetic_runs(12):
        if profile.fingerprint not in seen:
            store.save_profile(profile)
            seen.add(profile.fingerprint)
        rows.append((profile.fingerprint, config, result))
    store.log_runs(rows, source="bundled")
    path = tmp_path / "runs.parquet"
    store.export_parquet(path)
    return path


def test_a_new_store_is_seeded_once_and_gets_a_ranker(mlsel_home, export_file, monkeypatch) -> None:
    monkeypatch.delenv("MLSEL_NO_BUNDLED", raising=False)  # tests leave it out by default
    store = Store.open(mlsel_home)
    lines: list[str] = []
    seed = bundled.seed_bundled(store, home=mlsel_home, path=export_file, announce=lines.append)
    assert seed is not None and seed.runs_added > 0 and len(lines) == 1
    runs = store.runs_frame()
    assert runs.height == seed.runs_added and set(runs["source"]) == {"bundled"}
    assert seed.refit_version is not None and seed.refit_activated
    assert store.active_ranker().version == seed.refit_version
    # later opens add nothing
    assert bundled.seed_bundled(store, home=mlsel_home, path=export_file) is None
    assert store.runs_frame().height == seed.runs_added


def test_bundled_runs_can_be_left_out(mlsel_home, export_file, monkeypatch) -> None:
    monkeypatch.delenv("MLSEL_NO_BUNDLED", raising=False)
    store = Store.open(mlsel_home)
    assert bundled.seed_bundled(store, path=export_file, no_bundled=True) is None
    store.set_setting("bundled", "false")
    assert bundled.seed_bundled(store, path=export_file) is None
    store.set_setting("bundled", "true")
    monkeypatch.setenv("MLSEL_NO_BUNDLED", "1")
    assert bundled.seed_bundled(store, path=export_file) is None
    assert store.runs_frame().height == 0


def test_cli_suggest_on_a_fresh_home_uses_the_bundled_ranker(
    mlsel_home, export_file, monkeypatch
) -> None:
    from mlsel.profilers.samples import write_sample

    monkeypatch.delenv("MLSEL_NO_BUNDLED", raising=False)
    monkeypatch.setattr(bundled, "bundled_file", lambda: export_file)
    data = write_sample("shapes", mlsel_home.parent / "shapes", classes=3, per_class=8, size=32)
    result = CliRunner().invoke(app, ["suggest", str(data), "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "Seeding a new store" in result.output, result.output
    assert "scored by ranker" in result.output, result.output
    result = CliRunner().invoke(
        app,
        [
            "--no-bundled",
            "--home",
            str(mlsel_home.parent / "bare"),
            "suggest",
            str(data),
            "--top",
            "2",
        ],
    )
    assert result.exit_code == 0 and "scored by rules" in result.output
