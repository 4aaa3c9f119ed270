"""The kernel's records and home layout: one JSON form per record, every path in one place."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlsel.kernel import StopRun
from mlsel.kernel.errors import ConfigError
from mlsel.kernel.home import Home, machine_cache_dir, resolve_home
from mlsel.kernel.records import Config, EpochRecord, RunRecord, RunResult


def test_a_run_result_has_one_json_form() -> None:
    result = RunResult(
        status="completed",
        score=0.5,
        metrics={"accuracy": 0.6},
        confusion=((1, 2), (0, 3)),
        curve=(EpochRecord(1, 0.9, 0.8, 0.5, 1.5),),
        hardware={"device": "cpu"},
    )
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["confusion"] == [[1, 2], [0, 3]]
    assert data["curve"] == [
        {"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "score": 0.5, "seconds": 1.5}
    ]
    record = RunRecord("r1", "fp", "local", Config("torchvision", "resnet18"), result)
    assert record.to_dict()["result"] == data
    assert record.to_dict()["config"]["arch"] == "resnet18"


def test_every_path_of_a_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSEL_HOME", str(tmp_path / "h"))
    home = Home.resolve()
    assert home.root == resolve_home() == (tmp_path / "h").resolve()
    assert home.store == home.root / "experiments.duckdb"
    assert home.run("abc") == home.root / "runs" / "abc"
    assert home.ranker("v1") == home.root / "rankers" / "v1"
    assert home.search("0123456789abcdef", "s1") == home.root / "searches" / "0123456789ab-s1"
    assert home.weights == home.root / "weights"
    assert home.ultralytics == home.root / "cache" / "ultralytics"
    assert Home.of_store(home.store) == home
    assert not home.root.exists()  # asking creates nothing
    monkeypatch.setenv("MLSEL_CACHE_DIR", str(tmp_path / "c"))
    assert machine_cache_dir() == tmp_path / "c"


def test_stop_run_takes_only_the_stop_statuses() -> None:
    assert StopRun("timeout").status == "timeout"
    with pytest.raises(ConfigError, match="'status' parameter of StopRun"):
        StopRun("completed")


def test_importing_the_kernel_needs_only_the_standard_library() -> None:
    code = (
        "import sys, mlsel.kernel, mlsel.kernel.catalogue, mlsel.kernel.backbones; "
        "heavy = [m for m in ('torch', 'numpy', 'PIL', 'duckdb', 'polars') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
