"""`mlsel suggest DATASET`: the configurations most likely to win on a dataset, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlsel.cli._common import console, open_store, parse_duration, print_json, state
from mlsel.kernel.catalogue import display_name
from mlsel.kernel.errors import ConfigError, invalid_parameter

__all__ = ["register", "suggest_command"]


def parse_gpus(text: str | None) -> tuple[str, int]:
    """``(device, count)`` from ``--gpus``: none/cpu, all, a count, or ids like ``0,1``."""
    if text is None:
        return "auto", 1
    low = text.strip().lower()
    if low in ("none", "cpu", "0"):
        return "cpu", 1
    if low == "all":
        return "cuda", _gpu_count()
    parts = [p for p in low.split(",") if p.strip()]
    if not parts or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(
            f"The --gpus option must be none, all, a count or ids such as 0,1. Got {text!r}."
        )
    count = int(parts[0]) if len(parts) == 1 else len(parts)
    return "cuda", max(count, 1)


def _gpu_count() -> int:
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return 1
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return max(len([line for line in out.stdout.splitlines() if line.strip()]), 1)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def suggest_command(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Argument(help="Folder of the dataset to suggest models for.")],
    top: Annotated[int, typer.Option("--top", "-k", help="How many suggestions.")] = 5,
    budget: Annotated[
        str | None, typer.Option("--budget", help="Time budget per run, e.g. 90s, 30m, 2h.")
    ] = None,
    gpus: Annotated[
        str | None, typer.Option("--gpus", help="GPUs to train on: none, all, a count or 0,1.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Profile DATASET and suggest the configurations most likely to win on it."""
    from mlsel.metalearn import suggest

    if top < 1:
        raise invalid_parameter("top", "suggest", "an int in [1, inf)", top)
    budget_s = parse_duration(budget) if budget is not None else None
    device, count = parse_gpus(gpus)
    home = state(ctx).home
    report = suggest(
        dataset,
        store=open_store(ctx),
        home=home,
        top=top,
        budget_s=budget_s,
        device=device,
        n_devices=count,
    )
    if as_json:
        print_json(_as_json(report))
        return
    console.print(
        f"[bold]{report.profile.name or dataset}[/] ({report.profile.task}): "
        f"scored by {report.note}"
    )
    console.print(_table(report))
    if report.observed:
        console.print(
            f"[dim]{report.observed} configs already ran on this dataset: the best observed "
            "comes first, the predictions place the others around them.[/]"
        )
    if report.dropped:
        console.print(f"[dim]{report.dropped} candidates left out: over the budget or memory.[/]")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def _as_json(report: Any) -> dict[str, Any]:
    return {
        "dataset": report.profile.fingerprint,
        "name": report.profile.name,
        "task": report.profile.task,
        "scorer": report.scorer,
        "note": report.note,
        "dropped": report.dropped,
        "warnings": list(report.warnings),
        "observed_configs": report.observed,
        "suggestions": [
            {
                "rank": s.rank,
                "config": s.config.to_dict(),
                "params": s.config.to_params(),
                "predicted_score": s.predicted_score,
                "predicted_seconds": s.predicted_seconds,
                "predicted_memory_mb": s.predicted_memory_mb,
                "reasons": list(s.reasons),
                "observed_score": s.observed_score,
                "observed_runs": s.observed_runs,
            }
            for s in report.suggestions
        ],
    }


def _why(reasons: list[str] | tuple[str, ...]) -> str:
    """Reasons joined, those with the same cause merged: "few images (12): a, b"."""
    causes: dict[str, list[str]] = {}
    for reason in reasons:
        cause, sep, effect = reason.partition(": ")
        causes.setdefault(cause if sep else reason, [])
        if sep:
            causes[cause].append(effect)
    return (
        "; ".join(
            f"{cause}: {', '.join(effects)}" if effects else cause
            for cause, effects in causes.items()
        )
        or "-"
    )


def _table(report: Any) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    score = "score" if report.scorer == "ranker" else "rule score"
    table.add_column("#", justify="right")
    table.add_column("model", no_wrap=True)
    table.add_column("training", ratio=2)
    table.add_column(score, justify="right")
    observed = any(s.observed_score is not None for s in report.suggestions)
    if observed:
        table.add_column("observed", justify="right")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("why", ratio=3)
    for s in report.suggestions:
        c = s.config
        weights = c.pretrained or "scratch"
        if c.finetune == "linear":
            training = (
                f"{weights}, linear probe, wd {c.weight_decay:g}, aug {c.augment}, "
                f"{c.image_size} px"
            )
        else:
            training = (
                f"{weights}, {c.finetune}, lr {c.lr:g}, {c.optimizer}, aug {c.augment}, "
                f"{c.epochs} ep, {c.image_size} px"
            )
        name = display_name(c.arch).replace("+", "+\n")  # one backbone a line
        model = name if c.backend == "torchvision" else f"{name} ({c.backend})"
        cells = [str(s.rank), escape(model), escape(training), f"{s.predicted_score:.2f}"]
        if observed:
            cells.append(_observed(s))
        cells += [_duration(s.predicted_seconds), escape(_why(s.reasons))]
        table.add_row(*cells)
    return table


def _observed(s: Any) -> str:
    """The best score a config reached on this dataset, with its run count when > 1."""
    if s.observed_score is None:
        return "-"
    runs = f" ({s.observed_runs} runs)" if s.observed_runs > 1 else ""
    return f"{s.observed_score:.4f}{runs}"


def register(app: typer.Typer) -> None:
    """Add `mlsel suggest`."""
    app.command("suggest")(suggest_command)
