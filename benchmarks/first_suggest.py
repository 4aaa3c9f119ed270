"""A new user's first ``mlsel suggest`` on each real-images task: what it picks, and how long
it takes.

For each task of ``realimages_tasks.py`` (seed 0, the fit view without ``test/``), one
``mlsel suggest --top 3`` in a fresh home with a cold machine cache: the store is seeded
with the shipped bundled runs, the first ranker is fitted, the dataset profiled, and the
configs ranked, all inside the timed command. Recorded per task: the wall time, the scorer,
the top three picks, and whether the first uses ImageNet weights at 160 px or more (what
the linear-probe baseline of ``realimages.py`` says such data wants). The tasks' sources
never enter the bundled corpus, so every pick is a transfer.

    .venv/bin/python benchmarks/first_suggest.py [--tasks noto-emoji] [--out benchmarks/out]

Writes ``first_suggest.json`` and ``first_suggest.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

from benchmarks.cli_run import mlsel_json  # noqa: E402
from benchmarks.realimages_tasks import TASKS, SourceMissing, build_task, check_sources  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
#: The first pick should see the images at least this large with ImageNet weights.
MIN_SIDE = 160


def wants_imagenet(config: dict[str, Any]) -> bool:
    """Whether a suggested config uses ImageNet weights at ``MIN_SIDE`` px or more."""
    return config.get("pretrained") == "imagenet" and int(config["image_size"]) >= MIN_SIDE


def describe(config: dict[str, Any]) -> str:
    """``arch pretrained finetune size px``: a config in a table cell."""
    weights = config.get("pretrained") or "scratch"
    return f"{config['arch']} {weights} {config['finetune']} {config['image_size']} px"


def first_suggest(fit: Path, work: Path) -> dict[str, Any]:
    """One timed ``mlsel suggest --top 3`` on ``fit`` in a fresh home under ``work``."""
    report, seconds = mlsel_json(["suggest", str(fit), "--top", "3"], work / "home", fresh=True)
    picks = [s["config"] for s in report["suggestions"]]
    return {
        "seconds": round(seconds, 1),
        "scorer": report["scorer"],
        "note": report["note"],
        "picks": picks,
        "top": describe(picks[0]) if picks else None,
        "imagenet_at_160": bool(picks) and wants_imagenet(picks[0]),
    }


def markdown(results: dict[str, Any]) -> str:
    """The report: one row a task, then how many first picks use ImageNet at 160 px+."""
    rows = results["tasks"]
    lines = [
        "# A new user's first `mlsel suggest` on real images",
        "",
        f"Fresh home, cold cache, shipped bundled runs; {results['machine']}. Time: the whole "
        "command (seeding the store, the first refit, profiling, ranking).",
        "",
        f"| task | first pick | ImageNet at {MIN_SIDE} px+ | 2nd and 3rd | scorer | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error']} | - | - | - | - |")
            continue
        rest = "; ".join(describe(c) for c in row["picks"][1:])
        mark = "yes" if row["imagenet_at_160"] else "no"
        lines.append(
            f"| {name} | {row['top']} | {mark} | {rest} | {row['scorer']} | {row['seconds']} |"
        )
    done = [row for row in rows.values() if "error" not in row]
    hits = sum(row["imagenet_at_160"] for row in done)
    lines += [
        "",
        f"First pick with ImageNet weights at {MIN_SIDE} px or more: {hits} of {len(done)}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--out", type=Path, default=OUT, help="results folder (tasks below it)")
    args = parser.parse_args(argv)
    work = args.out / "realimages"
    try:
        for name in args.tasks:
            check_sources(TASKS[name])
    except SourceMissing as exc:
        print(f"first_suggest: {exc}", file=sys.stderr)
        return 2
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    results: dict[str, Any] = {"machine": machine, "min_side": MIN_SIDE, "tasks": {}}
    for name in args.tasks:
        _, fit = build_task(TASKS[name], work, seed=0)
        print(f"{name}: first suggest in a fresh home...", file=sys.stderr, flush=True)
        try:
            results["tasks"][name] = first_suggest(fit, work / "suggest" / name)
        except RuntimeError as exc:
            results["tasks"][name] = {"error": str(exc)}
        print(f"  {results['tasks'][name]}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "first_suggest.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    (args.out / "first_suggest.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
