"""The detection part of the benchmark report: leave one detection task out.

Each detection task of the corpus is held out in turn. Every method learns from the rest of
the corpus (the classification runs and the other detection tasks) and ranks the configs
that were run on the held-out task; the table gives regret@1, regret@3 and NDCG@5 (as
:mod:`mlsel.metalearn.evaluation` computes them) and, per task, what the ranker would have
picked against the best config there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["DETECT_METHODS", "detect_section"]

DETECT_METHODS = ("ranker", "rules", "nearest-dataset", "best-on-average", "random")


def _config_name(row: dict[str, Any]) -> str:
    """A training-frame row's config in a few words."""
    arch, lr, augment = str(row["cfg_arch"]), row["cfg_lr"], row["cfg_augment"]
    if row["cfg_backend"] == "ultralytics":
        return f"{arch} scratch lr {lr:g} {augment}"
    return f"{arch} {row['cfg_finetune']} {row['cfg_image_size']} px lr {lr:g} {augment}"


def _picks(frame: Any, ev: Any) -> dict[str, tuple[str, float, str, float]]:
    """Per held-out task: (ranker's pick, its score, the best config, its score)."""
    from mlsel.metalearn.baselines import ranker_scorer

    out = {}
    for (held,) in ev.held_out:
        mask = frame["dataset"] == held
        train, test = frame.filter(~mask), frame.filter(mask)
        scores = np.asarray(ranker_scorer(train, test), dtype=float)
        rows = test.to_dicts()
        pick = rows[int(np.argmax(scores))]
        ok = [r for r in rows if r["score"] is not None and r["status"] != "failed"]
        best = max(ok, key=lambda r: r["score"])
        out[str(test["dataset_name"][0])] = (
            _config_name(pick),
            float(pick["score"] or 0.0),
            _config_name(best),
            float(best["score"]),
        )
    return out


def detect_section(frame: Any) -> tuple[str, dict[str, Any]]:
    """Markdown and JSON of leave-one-detection-task-out on ``frame`` (a training frame)."""
    from mlsel.metalearn.evaluation import evaluate

    detect = frame.filter(frame["task"] == "detect")
    tasks = sorted({str(d) for d in detect["dataset"].to_list()})
    if len(tasks) < 3:
        return (
            f"Not measured yet: the corpus holds {len(tasks)} detection tasks (needs 3). Run "
            "`python -m benchmarks.bundle.harness --kind detect --threads 1`.\n",
            {},
        )
    ev = evaluate(frame, group_by="dataset", hold_out=tasks)
    names = dict(zip(detect["dataset"].to_list(), detect["dataset_name"].to_list(), strict=True))
    statuses = detect.group_by("status").len().sort("status").iter_rows()
    lines = [
        f"Runs: {detect.height} detection runs on {len(tasks)} tasks "
        f"({', '.join(f'{n} {s}' for s, n in statuses)}), "
        f"{detect['wall_seconds'].sum() / 3600:.1f} h of training; every method also learns "
        "from the classification runs.",
        "",
        f"**Leave one detection task out** ({ev.n_datasets} held-out tasks; lower regret and "
        "higher NDCG are better):",
        "",
        "| method | regret@1 | regret@3 | NDCG@5 |",
        "|---|---|---|---|",
    ]
    for method in DETECT_METHODS:
        m = ev.summary[method]
        lines.append(
            f"| {method} | {m['regret@1']:.3f} | {m['regret@3']:.3f} | {m['ndcg@5']:.3f} |"
        )
    lines += [
        "",
        "regret@1 by held-out task, and the ranker's pick against the best config there "
        "(val mAP50-95):",
        "",
        "| held-out task | runs | " + " | ".join(DETECT_METHODS) + " | ranker's pick | best |",
        "|---|---|" + "---|" * (len(DETECT_METHODS) + 2),
    ]
    picks = _picks(frame, ev)
    for row in ev.per_dataset:
        name = str(names[row["dataset"]])
        cells = " | ".join(f"{row[m]['regret@1']:.3f}" for m in DETECT_METHODS)
        pick, pick_score, best, best_score = picks[name]
        lines.append(
            f"| {name} | {row['n_runs']} | {cells} | {pick} ({pick_score:.3f}) | "
            f"{best} ({best_score:.3f}) |"
        )
    data = {**ev.to_dict(), "picks": {k: list(v) for k, v in picks.items()}}
    return "\n".join(lines) + "\n", data
