"""The serve benchmark's second part: a load test of the REST service of a real export,
as it ships and with the prediction log on (see ``serve_bench.py`` for what is measured).
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

SIZE = 224


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---- 1. torch eager against ONNX Runtime ------------------------------------------------


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

    load_before = load_average()
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
        "load_average_after": load_average(),
    }


def service_markdown(service: dict[str, Any]) -> list[str]:
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
