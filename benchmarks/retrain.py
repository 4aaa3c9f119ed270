"""The retraining loop's active-learning curve on real colour emoji (Debian's Noto Color
Emoji, classed by Unicode group): hard examples against random examples.

Per seed, 7 emoji groups, 130 emoji a group drawn with the seed, rendered once:
4 a class train the champion, 16 a class are its validation split, 30 a class are a fixed
test set that no arm ever trains or selects on, and the other 80 a class are the pool of
unlabelled images a deployed model sees. The champion is a linear probe on
EfficientNet-Lite0's ImageNet features at 128 px (`mlsel train`'s code path).

Each arm runs the loop the user runs, three rounds, each through mlsel's own functions:
``cluster-margin`` (the hard examples: the lowest-margin images, one per cluster of their
embeddings), ``margin`` (the lowest-margin images alone) and ``random``:

1. the current champion predicts the images of the pool not yet labelled, logged
   (``mlsel predict NAME POOL --log``);
2. ``mlsel feedback export NAME DIR --limit 50 --strategy cluster-margin|margin|random``;
3. every exported file is labelled with its true group (moved into its class folder);
4. ``mlsel feedback import NAME DIR``: 40 train, 10 held out;
5. ``mlsel retrain NAME --same-config``: a challenger on everything labelled so far,
   compared with the champion on the held-out set through the gates (latency measured
   for real), promoted when it passes.

The curve is the macro F1 on the fixed test set of the champion (round 0) and of each
round's challenger, mean over the seeds. Target: hard examples (cluster-margin) at least
0.01 ahead of random after 3 rounds; plain margin is reported beside them (with a champion
of 4 images a class it is no better than random: the cold-start problem that
cluster-margin answers). Writes ``retrain.json``, ``retrain.md`` and ``retrain.png``.

    .venv/bin/python benchmarks/retrain.py                 # ~25 min on 2 cores
    .venv/bin/python benchmarks/retrain.py --seeds 0 --rounds 1
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

from benchmarks.realimages_tasks import EMOJI_GROUPS, emoji_by_group, render_emoji  # noqa: E402

GROUPS = tuple(g for g in EMOJI_GROUPS if g != "Activities")  # 85 emoji: too few
TRAIN, VAL, TEST, POOL = 4, 16, 30, 80
ARMS = ("cluster-margin", "margin", "random")
HARD = "cluster-margin"
NAME = "emoji"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def build(work: Path, seed: int) -> tuple[Path, Path, Path, dict[str, str]]:
    """The champion's data (train/ val/), the test set and the pool of one seed; returns
    them and each pool file's true class."""
    rng = random.Random(seed)
    champion, test, pool = work / "champion", work / "test", work / "pool"
    truth: dict[str, str] = {}
    if pool.is_dir():
        shutil.rmtree(work)
    by_group = emoji_by_group()
    for group in GROUPS:
        label = _slug(group)
        rendered = [(c, render_emoji(c)) for c in by_group[group]]
        usable = [(c, png) for c, png in rendered if png]
        chosen = rng.sample(usable, TRAIN + VAL + TEST + POOL)
        parts = {
            champion / "train" / label: chosen[:TRAIN],
            champion / "val" / label: chosen[TRAIN : TRAIN + VAL],
            test / label: chosen[TRAIN + VAL : TRAIN + VAL + TEST],
            pool: chosen[TRAIN + VAL + TEST :],
        }
        for folder, items in parts.items():
            folder.mkdir(parents=True, exist_ok=True)
            for char, png in items:
                name = f"{label}-{ord(char[0]):x}-{len(char)}.png"
                (folder / name).write_bytes(png)
                if folder == pool:
                    truth[str((folder / name).resolve())] = label
    return champion, test, pool, truth


def _test_images(test: Path) -> list[tuple[Path, str]]:
    return [(p, p.parent.name) for p in sorted(test.glob("*/*.png"))]


def _label(export: Path, truth: dict[str, str]) -> int:
    with open(export / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        label = truth[str(Path(row["original"]).resolve())]
        shutil.move(export / row["file"], export / label / Path(row["file"]).name)
    return len(rows)


def _predict_and_log(store: Any, home: Path, pool: list[Path]) -> int:
    from mlsel.metalearn.models import resolve_model
    from mlsel.metalearn.prediction_log import log_file_predictions
    from mlsel.trainers.prediction import open_predictor

    resolved = resolve_model(NAME, dataset=None, home=home)
    predictor = open_predictor(run_dir=resolved.run_dir)
    rows = predictor.predict_files(pool, batch_size=64, probabilities=True)
    return log_file_predictions(
        store,
        rows,
        model=NAME,
        classes=predictor.classes,
        model_version=resolved.registry_version,
        run_id=resolved.run_id,
    )


def run_arm(arm: str, seed: int, work: Path, rounds: int, batch: int) -> dict[str, Any]:
    """One arm of one seed: the champion, then ``rounds`` rounds of the loop."""
    from mlsel.experiment_store import Store
    from mlsel.kernel.records import Config
    from mlsel.metalearn._compare import score_model
    from mlsel.metalearn.feedback import export_feedback, import_feedback
    from mlsel.metalearn.retrain import retrain
    from mlsel.metalearn.search import SearchSettings
    from mlsel.profilers import read_dataset
    from mlsel.trainers import train

    champion_data, test, pool_dir, truth = build(work / "data", seed)
    home = work / arm / "home"
    shutil.rmtree(work / arm, ignore_errors=True)
    store = Store.open(home)
    probe = Config(
        backend="torchvision",
        arch="efficientnet_lite0",
        finetune="linear",
        image_size=128,
        epochs=1,
        augment="none",
        seed=seed,
    )
    first, _ = train(read_dataset(champion_data), probe, store=store, device="cpu")
    store.registry.promote(NAME, first, by="benchmark")
    images = _test_images(test)

    def test_f1(run_id: str) -> float:
        run_dir = Path(store.get_run(run_id).result.artifact_dir or home / "runs" / run_id)
        return score_model(run_id, run_id, run_dir, images, latency_ms=0.0).macro_f1

    curve = [test_f1(first)]
    steps: list[dict[str, Any]] = []
    labelled: set[str] = set()
    for round_no in range(1, rounds + 1):
        started = time.time()
        pool = [Path(p) for p in sorted(truth) if p not in labelled]
        _predict_and_log(store, home, pool)
        export = work / arm / f"label-{round_no}"
        exported = export_feedback(
            NAME, export, home=home, limit=batch, strategy=arm, seed=seed * 100 + round_no
        )
        labelled |= {str(Path(row["original"]).resolve()) for row in exported.rows}
        _label(export, truth)
        imported = import_feedback(NAME, export, home=home, seed=seed)
        settings = SearchSettings(
            budget_s=600, gpus="cpu", warm_start=False, max_trials=1, seed=seed, refit=False
        )
        report = retrain(NAME, settings, home=home)
        assert report.challenger is not None
        curve.append(test_f1(report.challenger.run_id))
        latency = next(c for c in report.checks if c.gate == "max_latency_ratio")
        steps.append(
            {
                "round": round_no,
                "exported": exported.exported,
                "new": sum(imported.new.values()),
                "held_out": imported.held_out,
                "promoted": report.promoted,
                "decision": report.decision,
                "held_out_f1": {
                    "champion": report.champion.macro_f1,
                    "challenger": report.challenger.macro_f1,
                },
                "latency_ratio": latency.figures["ratio"],
                "latency_ms": {
                    "champion": report.champion.latency_ms,
                    "challenger": report.challenger.latency_ms,
                },
                "test_f1": curve[-1],
                "seconds": time.time() - started,
            }
        )
        print(
            f"seed {seed} {arm:6s} round {round_no}: test macro F1 {curve[-1]:.4f} "
            f"({'promoted' if report.promoted else 'refused'}; latency x"
            f"{latency.figures['ratio']:.2f})",
            flush=True,
        )
    return {"arm": arm, "seed": seed, "curve": curve, "rounds": steps}


def _summary(results: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arm in ARMS:
        curves = [r["curve"] for r in results if r["arm"] == arm]
        if not curves:
            continue
        out[arm] = {
            "mean": [statistics.fmean(c[i] for c in curves) for i in range(rounds + 1)],
            "sd": [
                statistics.stdev(c[i] for c in curves) if len(curves) > 1 else 0.0
                for i in range(rounds + 1)
            ],
            "promoted": sum(s["promoted"] for r in results if r["arm"] == arm for s in r["rounds"]),
            "latency_ratios": [
                s["latency_ratio"] for r in results if r["arm"] == arm for s in r["rounds"]
            ],
        }
    if HARD in out and "random" in out:
        out["gap_after_last_round"] = out[HARD]["mean"][-1] - out["random"]["mean"][-1]
        out["target_met"] = out["gap_after_last_round"] >= 0.01
        out["per_seed_gaps"] = [
            next(r for r in results if r["arm"] == HARD and r["seed"] == seed)["curve"][-1]
            - next(r for r in results if r["arm"] == "random" and r["seed"] == seed)["curve"][-1]
            for seed in sorted({r["seed"] for r in results})
        ]
    if "margin" in out and "random" in out:
        out["margin_gap_after_last_round"] = out["margin"]["mean"][-1] - out["random"]["mean"][-1]
    return out


def _markdown(data: dict[str, Any]) -> str:
    summary, rounds = data["summary"], data["rounds"]
    lines = [
        "# Retraining loop: hard examples against random examples",
        "",
        f"Noto Color Emoji, {len(GROUPS)} Unicode groups; champion: linear probe on "
        f"EfficientNet-Lite0 at 128 px, {TRAIN} images a class (+{VAL} validation); "
        f"{data['batch']} images labelled a round; macro F1 on a fixed test set of {TEST} a "
        f"class; mean ± sd over seeds {data['seeds']}. Command: `{data['command']}`.",
        "",
        "| arm | " + " | ".join(["champion"] + [f"round {i}" for i in range(1, rounds + 1)]) + " |",
        "|---" * (rounds + 2) + "|",
    ]
    for arm in ARMS:
        if arm in summary:
            cells = [
                f"{m:.4f} ± {s:.4f}"
                for m, s in zip(summary[arm]["mean"], summary[arm]["sd"], strict=True)
            ]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    if "gap_after_last_round" in summary:
        met = "met" if summary["target_met"] else "**not met**"
        lines += [
            "",
            f"Hard examples (cluster-margin) minus random after round {rounds}: "
            f"**{summary['gap_after_last_round']:+.4f}** (target +0.01: {met}); by seed: "
            + ", ".join(f"{g:+.4f}" for g in summary["per_seed_gaps"])
            + f". Plain margin minus random: {summary['margin_gap_after_last_round']:+.4f}.",
        ]
    lines += ["", "| arm | challengers promoted | latency ratios (challenger / champion) |"]
    lines += ["|---|---|---|"]
    for arm in ARMS:
        if arm in summary:
            ratios = ", ".join(f"{r:.2f}" for r in summary[arm]["latency_ratios"])
            lines.append(f"| {arm} | {summary[arm]['promoted']} | {ratios} |")
    lines += ["", "![curve](retrain.png)", ""]
    return "\n".join(lines)


def _plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for arm in ARMS:
        if arm in data["summary"]:
            mean, sd = data["summary"][arm]["mean"], data["summary"][arm]["sd"]
            x = list(range(len(mean)))
            ax.errorbar(x, mean, yerr=sd, marker="o", capsize=3, label=arm)
    ax.set_xticks(range(data["rounds"] + 1))
    ax.set_xlabel(f"rounds of {data['batch']} labelled images")
    ax.set_ylabel("test macro F1")
    ax.set_title("retraining loop on Noto emoji groups")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/out/retrain_work"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args(argv)
    os.environ.setdefault("MLSEL_OFFLINE", "1")
    os.environ["MLSEL_NO_BUNDLED"] = "1"  # the champion is trained here, not suggested
    os.environ.setdefault("MLSEL_CACHE_DIR", str((args.work / "cache").resolve()))
    started = time.time()
    results = [
        run_arm(arm, seed, args.work / f"seed{seed}", args.rounds, args.batch)
        for seed in args.seeds
        for arm in ARMS
    ]
    data = {
        "command": "python benchmarks/retrain.py " + " ".join(argv or sys.argv[1:]),
        "seeds": args.seeds,
        "rounds": args.rounds,
        "batch": args.batch,
        "results": results,
        "summary": _summary(results, args.rounds),
        "seconds": time.time() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retrain.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    (args.out / "retrain.md").write_text(_markdown(data), encoding="utf-8")
    _plot(data, args.out / "retrain.png")
    print(_markdown(data))


if __name__ == "__main__":
    main()
