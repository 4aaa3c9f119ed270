"""Benchmark the experiment store: logging throughput and the ranker's training query.

Logs N runs (default 100,000, each with a 5-epoch curve) through the public Store API
(``Store.log_runs`` in batches, one locked transaction per batch), then times
``Store.training_frame()`` with ~100 profiled datasets. For reference, the same rows
(already converted to table rows, same batches) are bulk-inserted into a bare DuckDB file
with the same schema through one plain connection, and the ratio is reported. Also times
one-call ``log_run`` latency. Prints a table and writes ``benchmarks/out/store_bench.json``.

    python benchmarks/store_bench.py [--runs 100000] [--batch 10000] [--datasets 100]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

from mlsel.experiment_store import Store
from mlsel.experiment_store._codec import EPOCH_COLUMNS, RUN_COLUMNS, epoch_rows, run_row, utcnow
from mlsel.experiment_store._schema import migrate
from mlsel.experiment_store._tables import insert_rows
from mlsel.kernel import Config, DatasetProfile, EpochRecord, RunResult

ARCHS = [
    "resnet18",
    "resnet50",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "convnext_tiny",
    "vit_b_16",
    "yolo11n-cls",
    "regnet_y_400mf",
]
HARDWARE = {"device": "cuda:0", "gpu": "NVIDIA H100", "cpu": "x86_64", "gpu_count": "1"}
VERSIONS = {"mlsel": "0.1.0", "torch": "2.14.1", "torchvision": "0.29.1"}


def make_profiles(n_datasets: int, n_features: int, rng: random.Random) -> list[DatasetProfile]:
    """Profiles with ``n_features`` meta-features each."""
    return [
        DatasetProfile(
            fingerprint=f"{d:016x}",
            task="classify",
            features={f"f{k:02d}": rng.random() for k in range(n_features)} | {"n_train": 1e3},
            profiler_version="bench",
            name=f"dataset-{d}",
        )
        for d in range(n_datasets)
    ]


def make_runs(
    n: int, profiles: list[DatasetProfile], epochs: int, rng: random.Random
) -> list[tuple[str, Config, RunResult]]:
    """``n`` realistic finished runs: config, metrics, curve, timings, hardware."""
    rows = []
    for i in range(n):
        config = Config(
            backend="torchvision",
            arch=rng.choice(ARCHS),
            lr=10 ** rng.uniform(-5, -1),
            batch_size=rng.choice([8, 16, 32, 64]),
            epochs=epochs,
            augment=rng.choice(["none", "light", "strong"]),
            seed=i,
            extra=(("mixup", round(rng.random(), 3)),),
        )
        score = rng.random()
        curve = tuple(
            EpochRecord(
                e,
                train_loss=1 / (e + 1),
                val_loss=1.1 / (e + 1),
                score=score * (e + 1) / epochs,
                seconds=2.0,
            )
            for e in range(epochs)
        )
        status = "completed" if i % 10 else "failed"
        result = RunResult(
            status=status,
            score=score if status == "completed" else None,
            metrics={
                "accuracy": score,
                "macro_f1": score,
                "weighted_f1": score,
                "macro_precision": score,
                "macro_recall": score,
                "top5": 1.0,
            },
            curve=curve,
            wall_seconds=10.0 * epochs,
            seconds_per_epoch=10.0,
            peak_gpu_mb=1024.0,
            peak_host_mb=2048.0,
            hardware=HARDWARE,
            versions=VERSIONS,
            error=None if status == "completed" else "CUDA out of memory",
        )
        rows.append((profiles[i % len(profiles)].fingerprint, config, result))
    return rows


def bench_store(folder: Path, runs, profiles, batch: int, single: int) -> dict[str, float]:
    store = Store.at(folder / "api.duckdb")
    started = time.perf_counter()
    for profile in profiles:
        store.save_profile(profile)
    profiles_s = time.perf_counter() - started
    started = time.perf_counter()
    for at in range(0, len(runs), batch):
        store.log_runs(runs[at : at + batch])
    log_s = time.perf_counter() - started
    query_times, shape = [], (0, 0)
    for _ in range(3):
        started = time.perf_counter()
        frame = store.training_frame()
        query_times.append(time.perf_counter() - started)
        shape = frame.shape
    started = time.perf_counter()
    for fp, config, result in runs[:single]:
        store.log_run(fp, config, result)
    single_s = (time.perf_counter() - started) / max(single, 1)
    size = (folder / "api.duckdb").stat().st_size
    return {
        "save_profiles_s": profiles_s,
        "log_s": log_s,
        "query_first_s": query_times[0],
        "query_best_s": min(query_times),
        "frame_rows": shape[0],
        "frame_cols": shape[1],
        "log_run_single_ms": single_s * 1e3,
        "file_mb": size / 2**20,
    }


def bench_bare(folder: Path, runs, batch: int) -> float:
    """The same rows, already in table form, inserted through one plain connection."""
    now = utcnow()
    run_rows, curves = [], []
    for i, (fp, config, result) in enumerate(runs):
        run_id = f"{i:016x}"
        run_rows.append(
            run_row(
                run_id,
                fp,
                "local",
                config,
                result,
                started_at=now,
                finished_at=now,
                recorded_at=now,
            )
        )
        curves.append(epoch_rows(run_id, result.curve))
    con = duckdb.connect(str(folder / "bare.duckdb"))
    con.begin()
    migrate(con)
    con.commit()
    started = time.perf_counter()
    for at in range(0, len(runs), batch):
        con.begin()
        insert_rows(con, "runs", RUN_COLUMNS, run_rows[at : at + batch])
        insert_rows(
            con, "epochs", EPOCH_COLUMNS, [e for curve in curves[at : at + batch] for e in curve]
        )
        con.commit()
    con.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=5, help="curve length of every run")
    parser.add_argument("--single", type=int, default=200, help="one-call log_run samples")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "out" / "store_bench.json"
    )
    args = parser.parse_args()

    rng = random.Random(0)
    profiles = make_profiles(args.datasets, args.features, rng)
    runs = make_runs(args.runs, profiles, args.epochs, rng)
    with tempfile.TemporaryDirectory(prefix="mlsel-store-bench-") as tmp:
        folder = Path(tmp)
        api = bench_store(folder, runs, profiles, args.batch, args.single)
        bare_s = bench_bare(folder, runs, args.batch)
    figures = {
        "runs": args.runs,
        "batch": args.batch,
        "datasets": args.datasets,
        "features_per_dataset": args.features + 1,
        "epochs_per_run": args.epochs,
        "api_log_s": round(api["log_s"], 3),
        "api_runs_per_s": round(args.runs / api["log_s"]),
        "bare_insert_s": round(bare_s, 3),
        "bare_runs_per_s": round(args.runs / bare_s),
        "api_over_bare": round(api["log_s"] / bare_s, 2),
        "training_frame_first_s": round(api["query_first_s"], 3),
        "training_frame_best_s": round(api["query_best_s"], 3),
        "training_frame_shape": [api["frame_rows"], api["frame_cols"]],
        "log_run_single_ms": round(api["log_run_single_ms"], 1),
        "save_profile_s_total": round(api["save_profiles_s"], 3),
        "store_file_mb": round(api["file_mb"], 1),
        "targets": {"api_over_bare_max": 5.0, "training_frame_max_s": 1.0},
        "python": sys.version.split()[0],
        "duckdb": duckdb.__version__,
        "polars": pl.__version__,
        "machine": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
