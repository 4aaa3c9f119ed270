"""The per-file process pool: same answers as one process, safe start methods."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlsel.kernel.errors import DatasetError
from mlsel.profilers import read_dataset
from mlsel.profilers._parallel import _context, parallel_map
from mlsel.profilers._scan import scan_file


def test_pool_matches_one_process_and_reports_progress(make_classes) -> None:
    root = make_classes({"a": 150, "b": 150})  # above the serial threshold
    paths = sorted(str(p) for p in root.rglob("*.png"))
    seen: list[tuple[str, int, int]] = []
    pooled = parallel_map(
        scan_file, paths, stage="scan", workers=2, progress=lambda *a: seen.append(a)
    )
    assert pooled == [scan_file(p) for p in paths]
    assert seen[0] == ("scan", 0, 300) and seen[-1] == ("scan", 300, 300)
    data = read_dataset(root)
    assert len(data.items) == 300 and len(data.split("val")) == 60


def test_no_fork_once_native_thread_pools_may_run(monkeypatch) -> None:
    for name in ("torch", "duckdb"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "duckdb", sys.modules["sys"])
    assert _context().get_start_method() == "forkserver"


def test_val_fraction_is_checked(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="'val_fraction' parameter of read_dataset"):
        read_dataset(tmp_path, val_fraction=1.5)
