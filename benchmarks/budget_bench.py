"""How closely ``mlsel run`` keeps to its budget, with the real trainer on real digits.

    .venv/bin/python benchmarks/budget_bench.py [--budgets 30 60 120] [--repeats 2]

Each run is the whole CLI command in a subprocess (start-up, reading and profiling the
dataset, the search, the leaderboard and the copy of the best model), in a fresh home on
``mlsel sample digits`` (10 classes x 20), on the CPU. The promise is that the command
ends within 5 % of the budget or 30 s, whichever is larger. The tests check the budget's
logic with an injected clock; this is where the wall-clock precision is measured.
Writes ``benchmarks/out/budget_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
MLSEL = Path(sys.executable).with_name("mlsel")


def run_once(data: Path, budget_s: int) -> dict[str, Any]:
    """One ``mlsel run`` in a fresh home; its wall time against the promise."""
    with tempfile.TemporaryDirectory(prefix="mlsel-budget-") as home:
        env = {**os.environ, "MLSEL_HOME": home, "MLSEL_NO_BUNDLED": "1"}
        command = [
            str(MLSEL),
            "run",
            str(data),
            "--budget",
            f"{budget_s}s",
            "--gpus",
            "cpu",
            "--model",
            "small_cnn",
            "--model",
            "resnet18",
            "--output",
            str(Path(home) / "best"),
            "--no-refit",
            "--json",
        ]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mlsel run failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    tolerance = max(0.05 * budget_s, 30.0)
    return {
        "budget_s": budget_s,
        "wall_s": round(wall, 2),
        "over_s": round(wall - budget_s, 2),
        "ratio": round(wall / budget_s, 3),
        "tolerance_s": tolerance,
        "kept": wall <= budget_s + tolerance,
        "trials": report["trials"],
        "stop_reason": report["stop_reason"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[30, 60, 120])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.repeats < 1 or min(args.budgets) < 1:
        parser.error("--repeats and every budget must be at least 1")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlsel-budget-data-") as tmp:
        data = Path(tmp) / "digits"
        subprocess.run(
            [str(MLSEL), "sample", "digits", str(data), "--per-class", "20"],
            check=True,
            capture_output=True,
        )
        rows = []
        for _ in range(args.repeats):
            for budget in args.budgets:
                row = run_once(data, budget)
                rows.append(row)
                print(
                    f"budget {budget:4d} s: wall {row['wall_s']:7.1f} s "
                    f"({row['over_s']:+.1f} s, allowed +{row['tolerance_s']:.0f} s)"
                    f"{'' if row['kept'] else '  MISSED'}",
                    flush=True,
                )
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "data": "mlsel sample digits, 10 classes x 20",
        "rows": rows,
        "all_kept": all(r["kept"] for r in rows),
        "worst_over_s": max(r["over_s"] for r in rows),
    }
    (OUT / "budget_bench.json").write_text(json.dumps(result, indent=2))
    print(f"kept every budget: {result['all_kept']}; worst overshoot {result['worst_over_s']} s")


if __name__ == "__main__":
    main()
