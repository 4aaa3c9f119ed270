"""The real-image benchmark's report: spreads over seeds, the target, the Markdown table
and the anytime curves (see ``benchmarks/realimages.py``)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

ARMS = ("a", "b", "c")

# --- the report ----------------------------------------------------------------------


def wall_limit(budget_s: float) -> float:
    """The most seconds a whole ``mlsel run`` may take: 5 % or 30 s over its budget."""
    return max(budget_s * 1.05, budget_s + 30.0)


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def summarise(results: dict[str, Any], budget_s: float) -> dict[str, Any]:
    """Per task and arm, the spread over seeds of test macro F1 and seconds; (a) - (b)
    on the seeds both ran; and whether the target is met (``None``: not all measured)."""
    tasks: dict[str, Any] = {}
    for task, entry in results["tasks"].items():
        runs = entry["seeds"]
        arms = {}
        for arm in ARMS:
            done = [r[arm] for r in runs.values() if "test_f1" in r.get(arm, {})]
            if done:
                arms[arm] = {key: _spread([r[key] for r in done]) for key in ("test_f1", "seconds")}
        both = [r for r in runs.values() if all("test_f1" in r.get(a, {}) for a in "ab")]
        gain = [r["a"]["test_f1"] - r["b"]["test_f1"] for r in both]
        refit = [
            r["b"]["refit_test_f1"] for r in runs.values() if "refit_test_f1" in r.get("b", {})
        ]
        refit_gain = [
            r["a"]["test_f1"] - r["b"]["refit_test_f1"] for r in both if "refit_test_f1" in r["b"]
        ]
        tasks[task] = {
            "arms": arms,
            "a_minus_b": _spread(gain) if gain else None,
            "b_refit": _spread(refit) if refit else None,
            "a_minus_b_refit": _spread(refit_gain) if refit_gain else None,
        }
    gains = [t["a_minus_b"]["mean"] for t in tasks.values() if t["a_minus_b"]]
    refit_gains = [t["a_minus_b_refit"]["mean"] for t in tasks.values() if t["a_minus_b_refit"]]
    walls = [
        r["a"]["seconds"]
        for entry in results["tasks"].values()
        for r in entry["seeds"].values()
        if "seconds" in r.get("a", {})
    ]
    complete = bool(tasks) and len(gains) == len(tasks)
    target = {
        "rule": "(a) >= (b) + 0.02 on every task, >= (b) + 0.05 on average, and every "
        f"mlsel run within {wall_limit(budget_s):.0f} s (budget {budget_s:.0f} s + 5 % or 30 s)",
        "every_task": min(gains) >= 0.02 if complete else None,
        "average": statistics.fmean(gains) >= 0.05 if complete else None,
        "mean_a_minus_b": statistics.fmean(gains) if gains else None,
        "mean_a_minus_b_refit": statistics.fmean(refit_gains) if refit_gains else None,
        "within_budget": max(walls) <= wall_limit(budget_s) if walls else None,
        "max_wall_s": max(walls) if walls else None,
    }
    return {"tasks": tasks, "target": target}


def _cell(spread: dict[str, float] | None, digits: int) -> str:
    if not spread:
        return "-"
    mean, low, high = (f"{spread[k]:.{digits}f}" for k in ("mean", "min", "max"))
    return mean if spread["n"] == 1 else f"{mean} ({low}-{high})"


def _verdict(value: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "not measured yet"}[value]


def markdown(results: dict[str, Any], summary: dict[str, Any]) -> str:
    """The report: one row per task, then the target."""
    budget = results["settings"]["budget"]
    lines = [
        "# Real-image transfer benchmark",
        "",
        "Test macro F1 and wall seconds, mean over seeds (min-max). Arms: (a) "
        f"`mlsel run --budget {budget} --gpus cpu` (fresh home, cold cache); (b) the best "
        "on val of linear probes on frozen ImageNet features (EfficientNet-Lite0/1/2, "
        "MobileNetV2, SqueezeNet 1.1, 224 px, logistic regression); (c) `mlsel train` "
        "EfficientNet-Lite0, "
        "head, 224 px, 10 epochs, light augmentation. All select on val and score test. "
        "(a) hands over its kept linear probe fitted again on train + val once selection is "
        "done; (b+) is (b)'s chosen probe fitted the same way, shown beside the target's "
        "baseline for comparison.",
        "",
        "| task | classes | train/val/test | (a) F1 | (a) s | (b) F1 | (b) s | (b) backbones "
        "| (c) F1 | (c) s | (a)-(b) | (b+) F1 | (a)-(b+) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, entry in results["tasks"].items():
        arms = summary["tasks"][task]["arms"]
        picked = sorted(
            {r["b"]["model"] for r in entry["seeds"].values() if "model" in r.get("b", {})}
        )
        sizes = next(iter(entry["seeds"].values()))["sizes"]
        row = [task, str(len(entry["classes"])), "/".join(map(str, sizes.values()))]
        for arm in ARMS:
            row += [_cell(arms.get(arm, {}).get("test_f1"), 3)]
            row += [_cell(arms.get(arm, {}).get("seconds"), 0)]
            if arm == "b":
                row.append(", ".join(picked) or "-")
        row.append(_cell(summary["tasks"][task]["a_minus_b"], 3))
        row.append(_cell(summary["tasks"][task].get("b_refit"), 3))
        row.append(_cell(summary["tasks"][task].get("a_minus_b_refit"), 3))
        lines.append("| " + " | ".join(row) + " |")
    target = summary["target"]
    mean_gain = target["mean_a_minus_b"]
    max_wall = target["max_wall_s"]
    lines += [
        "",
        f"Target: {target['rule']}.",
        f"- every task: {_verdict(target['every_task'])}",
        f"- average: {_verdict(target['average'])}"
        + (f" (mean (a)-(b) {mean_gain:+.3f})" if mean_gain is not None else ""),
        "- for comparison, mean (a)-(b+): "
        + (
            f"{target['mean_a_minus_b_refit']:+.3f}"
            if target.get("mean_a_minus_b_refit") is not None
            else "not measured yet"
        ),
        f"- within budget: {_verdict(target['within_budget'])}"
        + (f" (longest run {max_wall:.0f} s)" if max_wall is not None else ""),
        "",
        "![anytime curves of (a)](realimages_curves.png)",
        "",
    ]
    return "\n".join(lines)


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """Arm (a)'s best val macro F1 so far against seconds, a panel per task, with the
    budget and the val score of the probe that (b) picked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budget_s = results["settings"]["budget_s"]
    tasks = list(results["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        seeds = results["tasks"][task]["seeds"]
        for seed, runs in sorted(seeds.items()):
            history = runs.get("a", {}).get("history") or []
            if history:
                xs = [t for t, _ in history] + [runs["a"]["seconds"]]
                ys = [s for _, s in history] + [history[-1][1]]
                ax.step(xs, ys, where="post", label=f"(a) seed {seed}")
        probes = [r["b"]["val_f1"] for r in seeds.values() if "val_f1" in r.get("b", {})]
        if probes:
            ax.axhline(statistics.fmean(probes), color="grey", ls="--", label="(b) val")
        ax.axvline(budget_s, color="grey", ls=":")
        ax.set(title=task, xlabel="seconds", xlim=(0, wall_limit(budget_s)), ylim=(0, 1))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
    axes[0][0].set_ylabel("best val macro F1 so far")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
