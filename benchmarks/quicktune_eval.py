"""Leave-one-dataset-out evaluation on the Quick-Tune micro runs, and `suggest` latency.

Usage::

    .venv/bin/python benchmarks/quicktune_eval.py [--csv ../shared/data/quicktune-micro-runs-00.csv]
                                                   [--seeds 5] [--latency-runs 10000]

1. Imports the tracker CSV into a temporary store (Store.import_tracker_csv).
2. Runs leave-one-dataset-out (one fold per dataset) for the ranker and every baseline
   and prints regret@1, regret@3 and NDCG@5.
3. The same for the ranker with ``--seeds`` seeds (seed s: LightGBM's ``random_state = s``
   and the runs in a shuffled order, as another import's run ids would give them; seed 0
   is step 2's), and the spread of its figures.
4. The refit gate on real data: a fresh home seeded with the bundled runs (its first
   ranker active), the CSV imported, then a refit: both rankers' figures on the same
   folds and whether the candidate activated (what `mlsel refit --json` reports).
5. Fills another temporary store with ``--latency-runs`` runs (the CSV's runs repeated
   over synthetic datasets), refits, caches a profile, and times `mlsel suggest --json`
   in a fresh process (what a user waits for), 3 times. ``--latency-runs 0`` skips it and
   keeps the previous measurement in the output, marked so.
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


def seed_spread(csv: Path, seeds: int) -> dict:
    """Leave-one-dataset-out of the ranker alone, once per seed, and the spread."""
    import numpy as np

    from mlsel.experiment_store import Store, TrackerMapping
    from mlsel.metalearn.evaluation import evaluate
    from mlsel.metalearn.ranker import RankerModel

    with tempfile.TemporaryDirectory() as home:
        store = Store.open(home)
        store.import_tracker_csv(csv, TrackerMapping())
        frame = store.training_frame()
    per_seed = []
    for seed in range(seeds):
        rows = frame if seed == 0 else frame.sample(fraction=1.0, shuffle=True, seed=seed)

        def ranker(train, test, seed=seed):
            return RankerModel(random_state=seed).fit(train).predict(test)

        summary = evaluate(rows, scorers={"ranker": ranker}, max_folds=None).summary["ranker"]
        per_seed.append({"seed": seed, **summary})
    out: dict[str, Any] = {"per_seed": per_seed}
    for metric in ("regret@1", "regret@3", "ndcg@5"):
        values = np.array([r[metric] for r in per_seed])
        out[metric] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()),
            "max": float(values.max()),
        }
    return out


def gate_on_real_data(csv: Path) -> dict:
    """A fresh home with the bundled runs, the CSV imported, then `refit`: the gate."""
    from mlsel.experiment_store import Store, TrackerMapping
    from mlsel.metalearn import refit
    from mlsel.metalearn.bundled import seed_bundled

    with tempfile.TemporaryDirectory() as home:
        store = Store.open(home)
        seed = seed_bundled(store, home=home)
        before = store.active_ranker()
        report = store.import_tracker_csv(csv, TrackerMapping())
        started = time.perf_counter()
        result = refit(store, home=home)
        seconds = time.perf_counter() - started
        applied = _applied_view(store, before, result) if before else None
    ev = result.evaluation
    return {
        "bundled_seed": seed.note if seed else None,
        "active_before": before.version if before else None,
        "active_before_recorded_regret@1": before.evaluation.get("regret@1") if before else None,
        "imported_runs": report.runs_added,
        "rows": result.rows,
        "n_datasets": result.n_datasets,
        "candidate": ev["candidate"],
        "active": ev["active"],
        "compared_on": {k: ev["compared_on"][k] for k in ("n_datasets", "n_folds")},
        "summary": ev["summary"],
        "activated": result.activated,
        "reason": result.reason,
        "seconds": round(seconds, 1),
        "active_as_fitted_on_unseen": applied,
    }


def _applied_view(store, before, result) -> dict:
    """The bundled-only ranker as it was fitted, applied to the datasets it never saw,
    against the candidate held out on those same datasets (the same 10 folds)."""
    from pathlib import Path

    from mlsel.metalearn._gate import recipe_scorer, side
    from mlsel.metalearn.evaluation import evaluate
    from mlsel.metalearn.ranker import RankerModel

    old = RankerModel.load(Path(before.path))
    params = RankerModel.load(Path(result.path)).get_params()
    ev = evaluate(
        store.training_frame(),
        scorers={"candidate": recipe_scorer(params), "old": lambda tr, te: old.predict(te)},
        max_folds=10,
    )
    unseen = [r for r in ev.per_dataset if str(r["dataset"]) not in set(old.datasets_ or [])]
    return {
        "n_datasets": len(unseen),
        "candidate": side(unseen, "candidate"),
        "active_as_fitted": side(unseen, "old"),
        "random": side(unseen, "random"),
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
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--latency-runs", type=int, default=10_000)
    args = parser.parse_args()
    target = ROOT / "benchmarks" / "out"
    previous_file = target / "quicktune_eval.json"
    previous = json.loads(previous_file.read_text()) if previous_file.is_file() else {}
    out: dict[str, Any] = {"evaluation": evaluate_csv(args.csv)}
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
    if args.seeds:
        out["ranker_seeds"] = seed_spread(args.csv, args.seeds)
        r1 = out["ranker_seeds"]["regret@1"]
        print(
            f"ranker regret@1 over {args.seeds} seeds: mean {r1['mean']:.3f}, "
            f"std {r1['std']:.3f}, range {r1['min']:.3f} to {r1['max']:.3f}"
        )
    out["gate"] = gate_on_real_data(args.csv)
    gate = out["gate"]
    print(
        f"gate on bundled + this log ({gate['compared_on']['n_datasets']} datasets, "
        f"{gate['compared_on']['n_folds']} folds): candidate regret@1 "
        f"{gate['candidate']['regret@1']:.3f} ndcg@5 {gate['candidate']['ndcg@5']:.3f}; "
        f"active ({gate['active']['scored_by']}) regret@1 {gate['active']['regret@1']:.3f} "
        f"ndcg@5 {gate['active']['ndcg@5']:.3f}; activated: {gate['activated']}"
    )
    if args.latency_runs:
        out["suggest_latency"] = suggest_latency(args.csv, args.latency_runs)
        print("suggest latency:", out["suggest_latency"])
    elif "suggest_latency" in previous:
        out["suggest_latency"] = {**previous["suggest_latency"], "note": "not re-measured"}
    target.mkdir(parents=True, exist_ok=True)
    (target / "quicktune_eval.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {target / 'quicktune_eval.json'}")


if __name__ == "__main__":
    main()
