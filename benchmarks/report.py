"""Regenerate ``benchmarks/README.md``: the benchmark report, from what the benchmarks wrote.

    .venv/bin/python benchmarks/report.py [--corpus-home benchmarks/out/bundle/home]

Sections, each with the machine it ran on:

1. Leave-one-source-out evaluation of the ranker vs every baseline on the bundled corpus
   (the store the corpus harness filled, or the shipped ``data_cards/bundled/runs.parquet``
   imported into a temporary store): regret@1, regret@3, NDCG@5, and a PNG; then leave
   one detection task out (:mod:`benchmarks.report_detect`).
2. The warm-start anytime curves of ``benchmarks/warmstart.py`` (its table and PNG).
3. Training, profiling and store throughput ratios (``train_bench.py``,
   ``profile_bench.py``, ``store_bench.py``), and how closely ``mlsel run`` keeps to its
   budget (``budget_bench.py``).

A section whose benchmark has not been run says so and names the command to run.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.report_detect import detect_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
REPORT = ROOT / "benchmarks" / "README.md"
METHODS = ("ranker", "rules", "nearest-dataset", "best-on-average", "random")


@functools.cache
def _source_names() -> list[str]:
    """Every corpus source's name, longest first (so that a name's prefix match is its
    own source: ``twemoji-subgroups`` before ``twemoji``)."""
    from benchmarks.bundle.sources import FIRST_EDITION, corpus_sources

    try:
        names = [s.name for s in corpus_sources()]
    except ImportError:  # a source module that cannot load: the first edition still can
        names = [s.name for s in FIRST_EDITION]
    return sorted({*names, "shapes"}, key=len, reverse=True)


def origin(name: str) -> str:
    """The real collection a corpus task was derived from, read off its name (views and
    parts of one collection, such as ``twemoji-subgroups``, are that collection)."""
    from benchmarks.bundle.sources import SAME_SOURCE

    low = (name or "").lower()
    for source in _source_names():
        if low.startswith(source):
            return SAME_SOURCE.get(source, source)
    return "other"


def corpus_frame(corpus_home: Path | None) -> tuple[Any, str]:
    """The training frame of the corpus runs, with an ``origin`` column, and where it came from."""
    import polars as pl

    from mlsel.experiment_store import Store
    from mlsel.metalearn.bundled import bundled_file

    if corpus_home is not None and (corpus_home / "experiments.duckdb").is_file():
        shown = corpus_home.resolve()
        shown = shown.relative_to(ROOT) if ROOT in shown.parents else shown
        store, where = Store.open(corpus_home), f"the corpus store {shown}"
    else:
        shipped = bundled_file()
        if shipped is None:
            return None, "no corpus store and no shipped bundled runs"
        store = Store.open(tempfile.mkdtemp(prefix="mlsel-report-"))
        store.import_file(shipped)
        where = f"the shipped {shipped.relative_to(ROOT) if ROOT in shipped.parents else shipped}"
    frame = store.training_frame()
    names = frame["dataset_name"].fill_null("").to_list()
    return frame.with_columns(pl.Series("origin", [origin(n) for n in names])), where


def loso_section(frame: Any, where: str) -> tuple[str, dict[str, Any]]:
    """Leave one source out and leave one task out on the classification tasks."""
    from mlsel.metalearn.evaluation import evaluate

    if frame is not None:
        frame = frame.filter(frame["task"] == "classify")
    if frame is None or frame.height == 0:
        return (
            "Not measured yet: build the corpus with `python -m benchmarks.bundle.harness` "
            f"({where}).\n",
            {},
        )
    loso = evaluate(frame, group_by="origin")
    lodo = evaluate(frame, group_by="dataset", max_folds=10)
    counts = {
        o: (
            frame.filter(frame["origin"] == o)["dataset"].n_unique(),
            frame.filter(frame["origin"] == o).height,
        )
        for o in sorted(set(frame["origin"].to_list()))
    }
    devices = ", ".join(sorted({str(d) for d in frame["device"].to_list()}))
    lines = [
        f"Runs: {frame.height} finished runs on {frame['dataset'].n_unique()} tasks from "
        f"{where}, {frame['wall_seconds'].sum() / 3600:.1f} h of training on {devices}; "
        "by source: "
        + ", ".join(f"{o} {t} tasks / {n} runs" for o, (t, n) in counts.items())
        + ".",
        "",
    ]
    for title, ev in (("Leave one source out", loso), ("Leave one task out", lodo)):
        lines += [
            f"**{title}** ({ev.folds} folds, {ev.n_datasets} held-out tasks; lower "
            "regret and higher NDCG are better):",
            "",
            "| method | regret@1 | regret@3 | NDCG@5 |",
            "|---|---|---|---|",
        ]
        for method in METHODS:
            if method in ev.summary:
                m = ev.summary[method]
                lines.append(
                    f"| {method} | {m['regret@1']:.3f} | {m['regret@3']:.3f} | {m['ndcg@5']:.3f} |"
                )
        lines.append("")
    lines += _per_source(frame, loso)
    _plot_loso(loso.summary, OUT / "loso.png")
    lines.append("![leave-one-source-out](out/loso.png)\n")
    data = {"loso": loso.to_dict(), "lodo": lodo.to_dict(), "counts": counts}
    return "\n".join(lines), data


def _per_source(frame: Any, loso: Any) -> list[str]:
    """regret@1 of each method on the tasks of each held-out source."""
    import numpy as np

    source_of = dict(zip(frame["dataset"].to_list(), frame["origin"].to_list(), strict=True))
    sources = sorted({source_of[row["dataset"]] for row in loso.per_dataset})
    methods = [m for m in METHODS if m in loso.summary]
    lines = [
        "regret@1 by held-out source (mean over its tasks):",
        "",
        "| held-out source | tasks | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    lowest = []
    for source in sources:
        rows = [r for r in loso.per_dataset if source_of[r["dataset"]] == source]
        means = {m: float(np.mean([r[m]["regret@1"] for r in rows])) for m in methods}
        cells = [f"{means[m]:.3f}" for m in methods]
        lines.append(f"| {source} | {len(rows)} | " + " | ".join(cells) + " |")
        # rounded as shown, so a tie in the table counts as a tie
        shown = {m: round(v, 3) for m, v in means.items()}
        if "ranker" in shown and shown["ranker"] <= min(shown.values()):
            lowest.append(source)
    return [*lines, "", *_target(loso.summary, sources, lowest), ""]


def _target(summary: Any, sources: list[str], lowest: list[str]) -> list[str]:
    """The corpus target in words: the ranker's regret@1 below every baseline's overall,
    and lowest of all methods (ties included) on at least 75 % of the held-out sources."""
    if "ranker" not in summary:
        return []
    ranker = summary["ranker"]["regret@1"]
    above = [m for m in summary if m != "ranker" and summary[m]["regret@1"] <= ranker]
    missed = [s for s in sources if s not in lowest]
    share = len(lowest) / len(sources) if sources else 0.0
    return [
        "Target, the ranker's regret@1 below every baseline's overall: "
        + ("met." if not above else f"missed ({', '.join(above)} as low or lower)."),
        f"Target, the ranker lowest (or tied) on at least 75 % of held-out sources: "
        f"{'met' if share >= 0.75 else 'missed'} ({len(lowest)} of {len(sources)}"
        + (f"; not lowest on {', '.join(missed)}" if missed else "")
        + ").",
    ]


def _plot_loso(summary: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHODS if m in summary]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, metric in zip(axes, ("regret@1", "regret@3", "ndcg@5"), strict=True):
        ax.bar(
            methods,
            [summary[m][metric] for m in methods],
            color=["tab:blue" if m == "ranker" else "tab:grey" for m in methods],
        )
        ax.set_title(metric)
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle("Leave-one-source-out on the bundled corpus")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _read(name: str) -> dict[str, Any] | None:
    path = OUT / name
    return json.loads(path.read_text()) if path.is_file() else None


def warmstart_section() -> str:
    table = OUT / "warmstart.md"
    if not table.is_file():
        return "Not measured yet: run `.venv/bin/python benchmarks/warmstart.py`.\n"
    body = table.read_text().split("\n", 2)[-1].strip()
    return f"{body}\n\n![warm start](out/warmstart.png)\n"


def throughput_section() -> str:
    lines = ["| benchmark | mlsel | reference | ratio | target |", "|---|---|---|---|---|"]
    train = _read("train_bench.json")
    if train:
        for mode, target in (("head", "1.5x"), ("full", "1.0x")):
            t = train["throughput"][mode]
            lines.append(
                f"| train, {mode} fine-tuning ({train['data']}, {train['image_size']} "
                f"px, CPU) | {t['mlsel']['images_per_second']:.1f} img/s | "
                f"{t['reference']['images_per_second']:.1f} img/s | "
                f"{t['speedup']:.2f}x | {target} |"
            )
    heads = (train or {}).get("head_workload")
    if heads:
        ref = heads["reference"]
        how = "measured 1 trial x 1 epoch, extrapolated" if ref["extrapolated"] else "measured"
        arms = heads.get("arms") or {"default": {**heads["mlsel"], "speedup": heads["speedup"]}}
        for engine, arm in arms.items():
            lines.append(
                f"| train, head-only search: {heads['trials']} Lite0 heads x "
                f"{heads['epochs']} epochs, light augmentation ({heads['data']}, "
                f"{heads['image_size']} px, CPU), total wall time, cold embedding cache "
                f"included, {engine} embedding engine | {arm['total_seconds']:.0f} s | "
                f"{ref['total_seconds']:.0f} s (per-batch frozen backbone, PyTorch; {how}) | "
                f"{arm['speedup']:.1f}x | {heads['target']:.0f}x |"
            )
    for name in ("profile_bench.json", "profile_bench_10k.json"):
        prof = _read(name)
        if prof:
            ref = prof["rows"][0]
            for row in prof["rows"][1:]:
                each = row.get("speedup_each_repeat")
                spread = (
                    f"; median of {len(each)} repeats, each {min(each):.2f}x to {max(each):.2f}x"
                    if each
                    else ""
                )
                lines.append(
                    f"| {row['method']} ({prof['images']} JPEGs {prof['size'][0]}x"
                    f"{prof['size'][1]}{spread}) | {row['images_per_s']:.0f} img/s | "
                    f"{ref['images_per_s']:.0f} img/s | {row['speedup']:.2f}x | 2x |"
                )
    store = _read("store_bench.json")
    if store:
        lines.append(
            f"| store: log {store['runs']:,} runs | {store['api_runs_per_s']:,} runs/s | "
            f"{store['bare_runs_per_s']:,} runs/s (bare DuckDB) | 1/"
            f"{store['api_over_bare']:.2f} | within 5x |"
        )
        lines.append(
            f"| store: training frame of {store['runs']:,} runs | "
            f"{store['training_frame_best_s']:.2f} s | - | - | under 1 s |"
        )
    budget = _read("budget_bench.json")
    if budget:
        for row in budget["rows"]:
            lines.append(
                f"| mlsel run --budget {row['budget_s']}s, whole command ({budget['data']}) | "
                f"{row['wall_s']:.1f} s | {row['budget_s']} s | {row['ratio']:.3f} | "
                f"within +{row['tolerance_s']:.0f} s |"
            )
    if len(lines) == 2:
        return "Not measured yet: run the `benchmarks/*_bench.py` scripts.\n"
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus-home", type=Path, default=OUT / "bundle" / "home")
    args = parser.parse_args()
    frame, where = corpus_frame(args.corpus_home)
    loso, data = loso_section(frame, where)
    detect, data["detect_loto"] = (
        detect_section(frame) if frame is not None else ("Not measured yet.\n", {})
    )
    machine = (
        f"{platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    text = "\n".join(
        [
            "# Benchmarks",
            "",
            "Regenerated by `.venv/bin/python benchmarks/report.py` from what the benchmark "
            "scripts wrote to `benchmarks/out/`. Speed is always a ratio against a reference "
            "measured in the same run, because the machines are shared and noisy.",
            "",
            f"Machine of this report: {machine}, CPU only (2 cores) unless a section says "
            "otherwise.",
            "",
            "## The ranker on the bundled corpus",
            "",
            loso,
            "## The ranker on detection tasks",
            "",
            detect,
            "## Warm start: best score over time",
            "",
            warmstart_section(),
            "## Throughput",
            "",
            throughput_section(),
        ]
    )
    REPORT.write_text(text)
    (OUT / "report.json").write_text(json.dumps(data, indent=1, default=str))
    print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
