"""The detection benchmark's report: its arms, its targets and the Markdown table.

Read by ``benchmarks/detect.py``, which writes ``detect.json`` and ``detect.md``.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks.detect_tasks import EASIEST, TASKS

__all__ = ["ARMS", "MAP50_TARGET", "figure", "markdown", "targets"]

MAP50_TARGET = 0.5

ARMS: dict[str, str] = {
    "pretrained": "Faster R-CNN, MobileNetV2 ImageNet backbone frozen, 320 px",
    "scratch": "YOLO11n from scratch, 320 px",
    "fcos": "FCOS, EfficientNet-Lite0 ImageNet backbone frozen, 320 px",
    "search": "mlsel run --budget (fresh home, bundled runs without this task)",
}


def figure(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}"


def targets(results: dict[str, Any]) -> dict[str, str]:
    """Each target of the issue as ``met``, ``not met`` or ``not run`` (with why)."""
    tasks = results.get("tasks", {})
    ahead: list[str] = []
    behind: list[str] = []
    missing: list[str] = []
    for name in TASKS:
        arms = tasks.get(name, {}).get("arms", {})
        a, b = (arms.get(k, {}).get("test_map") for k in ("pretrained", "scratch"))
        if a is None or b is None:
            missing.append(name)
        else:
            (ahead if a > b else behind).append(name)
    if behind:
        first = f"not met: behind on {', '.join(behind)}"
    elif not ahead:
        first = "not run"
    elif missing:
        first = f"met on the {len(ahead)} task(s) run; not run on {', '.join(missing)}"
    else:
        first = "met"
    easiest = tasks.get(EASIEST, {}).get("arms", {}).get("pretrained", {}).get("test_map50")
    if easiest is None:
        second = "not run"
    else:
        verdict = "met" if easiest >= MAP50_TARGET else "not met"
        second = f"{verdict} (pretrained arm's test mAP50 {easiest:.3f})"
    return {
        "pretrained ahead on every task (test mAP50-95)": first,
        f"mAP50 >= {MAP50_TARGET} on the easiest task ({EASIEST})": second,
        "mlsel run --budget at least the default config (test mAP50-95)": _search_target(tasks),
    }


def _search_target(tasks: dict[str, Any]) -> str:
    """Whether the search arm scored at least the default config (arm ``pretrained``)."""
    behind: list[str] = []
    level: list[str] = []
    missing: list[str] = []
    for name in TASKS:
        arms = tasks.get(name, {}).get("arms", {})
        a, s = (arms.get(k, {}).get("test_map") for k in ("pretrained", "search"))
        if a is None or s is None:
            missing.append(name)
        else:
            (level if s >= a else behind).append(name)
    if behind:
        return f"not met: behind on {', '.join(behind)}"
    if not level:
        return "not run"
    if missing:
        return f"met on the {len(level)} task(s) run; not run on {', '.join(missing)}"
    return "met"


def markdown(results: dict[str, Any]) -> str:
    """The table of every task and arm run so far, the targets and the conditions."""
    settings = results.get("settings", {})
    lines = [
        "# Detection: pretrained-backbone detector vs YOLO11n from scratch",
        "",
        f"Each arm capped at {settings.get('arm_seconds', '?')} s wall on this machine (no "
        "epoch starts that would end past it) "
        f"({settings.get('cpus', '?')} CPUs, torch threads {settings.get('torch_threads', '?')}); "
        "scores are COCO (pycocotools) on the TEST split, the best epoch on val kept. "
        "Train s: until the deadline stopped the run; total s: the whole training call, "
        "with the final validation and saving (test scoring not included).",
        "",
        "| task | arm | mAP50-95 | mAP50 | val mAP50-95 | train s | total s | epochs "
        "| threads | load before | load after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results.get("tasks", {}).items():
        mark = " (easiest)" if name == EASIEST else ""
        for arm, r in entry.get("arms", {}).items():
            if "error" in r:
                lines.append(f"| {name}{mark} | {arm} | failed: {r['error'][:80]} ||||||||")
                continue
            load = [" / ".join(f"{v:.2f}" for v in r[k]) for k in ("load_before", "load_after")]
            lines.append(
                f"| {name}{mark} | {arm} | {figure(r['test_map'])} | {figure(r['test_map50'])} "
                f"| {figure(r['val_map'])} | {r['train_seconds']:.0f} | {r['wall_seconds']:.0f} "
                f"| {r['epochs']} | {r.get('settings', settings).get('torch_threads', '?')} "
                f"| {load[0]} | {load[1]} |"
            )
    lines += ["", "Load: 1 / 5 / 15 minute load averages.", "", "## Targets", ""]
    lines += [f"- {target}: **{verdict}**" for target, verdict in targets(results).items()]
    lines += ["", "## Arms", ""]
    lines += [f"- `{arm}`: {label}" for arm, label in ARMS.items()]
    lines += ["", "## Invocations", ""]
    for run in results.get("invocations", []):
        lines.append(
            f"- {run['started']}: {', '.join(run['tasks'])} ({', '.join(run['arms'])}); load "
            f"{' / '.join(map(str, run['load_before']))} before, "
            f"{' / '.join(map(str, run['load_after']))} after; {run['seconds']:.0f} s"
            + (f"; {run['note']}" if run.get("note") else "")
        )
    return "\n".join(lines) + "\n"
