"""Leave-one-dataset-out evaluation on the Quick-Tune micro runs, and `suggest` latency.

Usage::

    .venv/bin/python benchmarks/quicktune_eval.py [--csv ../shared/data/quicktune-micro-runs-00.csv]
                                                   [--latency-runs 10000]

1. Imports the tracker CSV into a temporary store (Store.import_tracker_csv).
2. Runs leave-one-dataset-out (one fold per dataset) for the ranker and every baseline
   and prints regret@1, regret@3 and NDCG@5.
3. Fills another temporary store with ``--latency-runs`` runs (the CSV's runs repeated
   over synthetic datasets), refits, caches a profile, and times `mlsel suggest --json`
   in a fresh process (what a user waits for), 3 times.
Writes ``benchmarks/out/quicktune_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "quicktune-micro-runs-00.csv"


def evaluate_csv(csv: Path) -> dict:
    from mlsel.experiment_store import Store, TrackerMapping
    from mlsel.metalearn.evaluation import evaluate

    with tempfile.TemporaryDirectory() as home:
        store = Store.open(home)
        report = store.import_tracker_csv(csv, TrackerMapping())
        frame = store.training_frame()
    started = time.perf_counter()
    evaluation = evaluate(frame, max_folds=None)
    seconds = time.perf_counter() - started
    feats = [c for c in frame.columns if c.startswith("feat_")]
    return {
        "import": {"runs_added": report.runs_added, "by_status": dict(report.by_status)},
        "rows": frame.height,
        "meta_features": feats,
        "seconds": round(seconds, 1),
        **evaluation.to_dict(),
    }


def _fill(store, csv: Path, n_runs: int) -> None:
    from mlsel.experiment_store import TrackerMapping
    from mlsel.kernel.records import DatasetProfile

    with tempfile.TemporaryDirectory() as tmp:
        base = Store_open(tmp)
        base.import_tracker_csv(csv, TrackerMapping())
        records = base.list_runs()
    rows: list[tuple[str, Any, Any]] = []
    copy = 0
    while len(rows) < n_runs:
        fp = f"latency{copy:03d}"
        store.save_profile(
            DatasetProfile(
                fp, "classify", {"num_classes": 20.0 + copy % 5, "n_train": 800.0}, "bench"
            )
        )
        rows.extend((fp, r.config, r.result) for r in records[: n_runs - len(rows)])
        copy += 1
    store.log_runs(rows, source="imported")


def Store_open(home):  # noqa: N802 - keeps the heavy import lazy
    from mlsel.experiment_store import Store

    return Store.open(home)


def suggest_latency(csv: Path, n_runs: int) -> dict:
    from mlsel.metalearn import refit
    from mlsel.profilers import write_sample

    home = Path(tempfile.mkdtemp(prefix="mlsel-latency-"))
    store = Store_open(home)
    _fill(store, csv, n_runs)
    refit_report = refit(store, home=home, max_folds=5)
    data = home / "digits"
    write_sample("digits", data, per_class=20)
    env = {**os.environ, "MLSEL_HOME": str(home)}
    cmd = [str(Path(sys.executable).parent / "mlsel"), "suggest", str(data), "--json"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    times = []
    for _ in range(3):  # the profile is cached now
        started = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - started)
    result = json.loads(out.stdout)
    return {
        "runs_in_store": store.training_frame().height,
        "refit_activated": refit_report.activated,
        "first_call_with_profiling": bool(first.stdout),
        "scorer": result["scorer"],
        "seconds": [round(t, 2) for t in times],
        "best_seconds": round(min(times), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--latency-runs", type=int, default=10_000)
    args = parser.parse_args()
    out = {"evaluation": evaluate_csv(args.csv)}
    summary = out["evaluation"]["summary"]
    print(f"{'method':<18}{'regret@1':>10}{'regret@3':>10}{'ndcg@5':>10}")
    for method, values in summary.items():
        print(
            f"{method:<18}"
            + "".join(f"{values[m]:>10.3f}" for m in ("regret@1", "regret@3", "ndcg@5"))
        )
    print(
        f"({out['evaluation']['n_datasets']} datasets, {out['evaluation']['rows']} runs, "
        f"{out['evaluation']['seconds']} s)"
    )
    if args.latency_runs:
        out["suggest_latency"] = suggest_latency(args.csv, args.latency_runs)
        print("suggest latency:", out["suggest_latency"])
    target = ROOT / "benchmarks" / "out"
    target.mkdir(parents=True, exist_ok=True)
    (target / "quicktune_eval.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {target / 'quicktune_eval.json'}")


if __name__ == "__main__":
    main()
