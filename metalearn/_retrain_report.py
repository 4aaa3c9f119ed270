"""The comparison report a retrain writes in the challenger's folder: Markdown, JSON, PNG."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlsel.metalearn.retrain import RetrainReport

__all__ = ["write_report"]


def _markdown(report: RetrainReport) -> str:
    champion, challenger = report.champion, report.challenger
    assert challenger is not None  # a report is written once a challenger is scored
    lines = [
        f"# Retrain of {report.name}: {champion.ref} against {challenger.ref}",
        "",
        f"Decision: **{report.decision}**.",
        "",
        f"Trained on {report.data}; both models predicted the same {champion.n_images} "
        "held-out images (the validation split: never trained on).",
        "",
        "| | champion | challenger |",
        "|---|---|---|",
        f"| model | {champion.ref} (run {champion.run_id}) | {challenger.ref} (run "
        f"{challenger.run_id}) |",
        f"| macro F1 | {champion.macro_f1:.4f} | {challenger.macro_f1:.4f} |",
        f"| accuracy | {champion.accuracy:.4f} | {challenger.accuracy:.4f} |",
        f"| ms per image | {champion.latency_ms:.2f} | {challenger.latency_ms:.2f} |",
        f"| unreadable images | {champion.unreadable} | {challenger.unreadable} |",
        "",
        "| gate | passed | figures |",
        "|---|---|---|",
    ]
    lines += [
        f"| {check.gate} | {'yes' if check.passed else '**no**'} | {check.detail} |"
        for check in report.checks
    ]
    lines += ["", "| class | champion recall | challenger recall | change |", "|---|---|---|---|"]
    for label, before in champion.recall.items():
        after = challenger.recall.get(label, 0.0)
        lines.append(f"| {label} | {before:.4f} | {after:.4f} | {after - before:+.4f} |")
    lines += ["", "![per-class recall](comparison.png)", ""]
    return "\n".join(lines)


def _plot(report: RetrainReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    champion, challenger = report.champion, report.challenger
    assert challenger is not None
    labels = list(champion.recall)
    x = np.arange(len(labels) + 1)
    before = [champion.macro_f1, *champion.recall.values()]
    after = [challenger.macro_f1, *(challenger.recall.get(c, 0.0) for c in labels)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(x) + 2), 3.6))
    ax.bar(x - 0.2, before, 0.4, label=f"champion {champion.ref}")
    ax.bar(x + 0.2, after, 0.4, label=f"challenger {challenger.ref}")
    ax.set_xticks(x, ["macro F1", *labels], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("held-out score")
    ax.set_title(f"{report.name}: {'promoted' if report.promoted else 'not promoted'}")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: RetrainReport, folder: Path) -> Path:
    """Write ``report.md``, ``comparison.json`` and ``comparison.png`` into ``folder``
    (replacing an earlier comparison there; written beside it first, then renamed)."""
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "report.md").write_text(_markdown(report), encoding="utf-8")
    data = {**report.to_dict(), "report_dir": str(folder)}
    (staging / "comparison.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    _plot(report, staging / "comparison.png")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder
