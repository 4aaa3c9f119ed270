"""`mlsel run`: a warm-started search that trains inside a time budget, then a leaderboard."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from mlsel.cli._common import (
    console,
    err_console,
    open_store,
    parse_duration,
    print_json,
    state,
)
from mlsel.kernel.catalogue import ENSEMBLE_KEY, display_name
from mlsel.kernel.errors import ConfigError, invalid_parameter

if TYPE_CHECKING:
    from mlsel.metalearn.search import (
        Budget,
        SearchEvent,
        SearchProgress,
        SearchReport,
        SearchSettings,
    )
    from mlsel.metalearn.space import CandidateSpace

__all__ = ["register", "run_command"]

# Run statuses in the user's terminal; any other status is shown unstyled.
_STYLE = {
    "completed": "green",
    "pruned": "yellow",
    "timeout": "yellow",
    "failed": "red",
    "interrupted": "red",
}


def _fmt(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"


def _status(status: str) -> Text:
    return Text(status, style=_STYLE.get(status, ""))


def _live_view(progress: SearchProgress, budget: Budget) -> Table:
    """Workers and their trials, counts, best so far and time left."""
    elapsed = budget.elapsed()
    counts = ", ".join(f"{n} {s}" for s, n in sorted(progress.statuses.items())) or "none yet"
    best = "-"
    if progress.best_score is not None:
        arch = progress.best_config.arch if progress.best_config else "?"
        best = f"{_fmt(progress.best_score)} (trial {progress.best_trial}, {arch})"
    table = Table(
        title=Text(
            f"mlsel run  |  {elapsed:,.0f} s of {budget.total_s:,.0f} s, "
            f"{max(0.0, budget.total_s - elapsed):,.0f} s left  |  best {best}"
        ),
        caption=Text(f"trials finished: {counts}; skipped (won't fit): {progress.skipped}"),
        expand=False,
    )
    for column in ("worker", "trial", "model", "epoch", "score", "state"):
        table.add_column(column)
    for w in progress.workers.values():
        busy = w.trial is not None
        table.add_row(
            Text(w.label),
            str(w.trial) if busy else "-",
            Text(w.arch if busy else "-"),
            f"{w.epoch}/{w.epochs}" if busy else "-",
            _fmt(w.score) if busy else "-",
            Text("training" if busy else (w.done or "starting")),
        )
    for line in progress.logs:
        table.add_row("", "", "", "", "", Text(line[:100], style="dim"))
    return table


def _leaderboard(report: SearchReport, top: int) -> Table:
    """Best first; fits 80 columns (the run id sits under the model, in grey)."""
    table = Table(title=Text(f"Leaderboard: {report.dataset_name} (search {report.name})"))
    table.add_column("trial", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("model / run", overflow="fold", max_width=18)
    table.add_column("training", min_width=16)
    table.add_column("time", justify="right", no_wrap=True)
    for row in report.rows[:top]:
        c = row.config
        if c.get("finetune") == "linear" and ENSEMBLE_KEY in (c.get("extra") or {}):
            training = (
                f"{c.get('pretrained')} ensemble of {len(c['arch'].split('+'))} linear probes, "
                f"aug {c['augment']}, {c['image_size']} px"
            )
        elif c.get("finetune") == "linear":
            training = (
                f"{c.get('pretrained')} linear probe, wd {c['weight_decay']:.0e}, "
                f"aug {c['augment']}, {c['image_size']} px"
            )
        else:
            training = (
                f"{c.get('pretrained') or 'scratch'} {c.get('finetune', '')}, "
                f"lr {c['lr']:.0e}, batch {c['batch_size']}, {c['epochs']} ep, "
                f"{c['image_size']} px"
            )
        model = Text(display_name(c["arch"]))
        model.append(f"\n{(row.run_id or '-')[:8]}", style="dim")
        table.add_row(
            f"{row.trial}{' warm' if row.warm else ''}",
            _status(row.status),
            _fmt(row.score),
            model,
            Text(training),
            "-" if row.seconds is None else f"{row.seconds:.0f} s",
        )
    return table


def _space(models: list[str] | None) -> CandidateSpace | None:
    if not models:
        return None
    from mlsel.metalearn.space import ARCHITECTURES, CandidateSpace

    unknown = [m for m in models if m not in ARCHITECTURES]
    if unknown:
        raise ConfigError(
            f"The --model option names unknown architecture(s) {unknown}. "
            f"Known: {', '.join(sorted(ARCHITECTURES))}."
        )
    return CandidateSpace(architectures={m: ARCHITECTURES[m] for m in models})


def _print_event(progress: SearchProgress, event: SearchEvent | None) -> None:
    """Without a terminal: one line per finished trial, skipped trial and worker message."""
    from mlsel.metalearn.search import TrialEnded, TrialSkipped, WorkerLog

    if isinstance(event, TrialEnded):
        line = Text(f"[{event.worker}] trial {event.trial} {display_name(event.config.arch)}: ")
        line.append_text(_status(event.status))
        line.append(f" score {_fmt(event.score)}  (best {_fmt(progress.best_score)})")
        console.print(line, highlight=False)
    elif isinstance(event, TrialSkipped):
        console.print(
            Text(
                f"[{event.worker}] trial {event.trial} {display_name(event.arch)} skipped: "
                f"predicted {event.predicted_seconds:.0f} s > {event.left:.0f} s left"
            ),
            highlight=False,
        )
    elif isinstance(event, WorkerLog) and event.level in ("WARNING", "ERROR", "CRITICAL"):
        err_console.print(Text(f"[{event.worker}] {event.text}"), highlight=False)


def run_command(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Argument(help="The dataset folder (any supported layout).")],
    budget: Annotated[
        str, typer.Option("--budget", "-b", help="Wall time for the whole command: 90s, 30m, 2h.")
    ],
    gpus: Annotated[
        str,
        typer.Option(
            "--gpus",
            help="all, a count (2), indices (0,2), cpu, or "
            "cpu:N (N CPU workers). One trial per GPU at a time.",
        ),
    ] = "all",
    sampler: Annotated[str, typer.Option("--sampler", help="tpe, ga (NSGA-II) or random.")] = "tpe",
    pruner: Annotated[
        str, typer.Option("--pruner", help="hyperband, halving or none.")
    ] = "hyperband",
    warm_start: Annotated[
        bool, typer.Option("--warm-start/--no-warm-start", help="Try the ranker's top picks first.")
    ] = True,
    top_k: Annotated[int, typer.Option("--top-k", help="Suggestions tried first.")] = 3,
    target: Annotated[
        float | None,
        typer.Option(
            "--target", help="Stop once a trial scores at least this (macro F1 / mAP50-95)."
        ),
    ] = None,
    max_trials: Annotated[
        int | None, typer.Option("--max-trials", help="Trials in all (resume included).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the latest (or --name) search on this dataset."),
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="Name of the search (default: the start time).")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Search only these architectures (repeat the option)."),
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Hold epochs fixed.")] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", help="Hold the image size fixed.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampler seed.")] = None,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Where the best model, its metrics.json and config.json go."
        ),
    ] = Path("mlsel-best"),
    refit: Annotated[
        bool,
        typer.Option(
            "--refit/--no-refit",
            help="Refit the ranker when enough new runs were logged (setting refit_every).",
        ),
    ] = True,
    top: Annotated[int, typer.Option("--top", help="Leaderboard rows shown.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    skip_bad_files: Annotated[
        bool,
        typer.Option(
            "--skip-bad-files",
            help="Leave out images that cannot be decoded (with a warning) instead of stopping.",
        ),
    ] = False,
) -> None:
    """Search and train the best model for DATASET within --budget (warm-started Optuna).

    Ctrl-C or SIGTERM stops it cleanly: running trials end as interrupted, the leaderboard
    so far is shown and the best completed trial copied; --resume continues the search.
    """
    started = time.time()
    from mlsel.metalearn.search import SearchSettings

    _check_ranges(top_k=top_k, max_trials=max_trials, epochs=epochs, image_size=image_size, top=top)

    fixed: dict[str, Any] = {}
    if epochs is not None:
        fixed["epochs"] = epochs
    if image_size is not None:
        fixed["image_size"] = image_size
    settings = SearchSettings(
        budget_s=parse_duration(budget),
        gpus=gpus,
        sampler=sampler,
        pruner=pruner,
        warm_start=warm_start,
        top_k=top_k,
        target=target,
        max_trials=max_trials,
        resume=resume,
        name=name,
        seed=seed,
        output=output,
        refit=refit,
        space=_space(model),
        fixed=fixed,
        skip_bad_files=skip_bad_files,
    )
    home = state(ctx).home
    open_store(ctx)  # a new store takes the bundled experience before the search starts
    with _sigterm_as_interrupt():
        report = _search(dataset, settings, home, started, as_json)
    if as_json:
        print_json(report.to_dict())
    else:
        _summary(report, top)
    if report.interrupted:
        raise typer.Exit(code=130)


def _search(
    dataset: Path, settings: SearchSettings, home: Path, started: float, as_json: bool
) -> SearchReport:
    """The search, with a live view on a terminal, a line per trial otherwise."""
    from mlsel.metalearn.search import run_search

    if as_json:
        return run_search(dataset, settings, home=home, started=started)
    if console.is_terminal:
        from rich.live import Live

        from mlsel.metalearn.search import Budget

        budget_view = Budget.start(settings.budget_s, started)
        with Live(console=console, refresh_per_second=4, transient=False) as live:

            def show(progress: SearchProgress, event: SearchEvent | None) -> None:
                live.update(_live_view(progress, budget_view))

            report = run_search(dataset, settings, home=home, started=started, on_event=show)
    else:
        report = run_search(dataset, settings, home=home, started=started, on_event=_print_event)
    return report


def _check_ranges(**values: int | None) -> None:
    """One red line for an option out of its range (Typer's own check prints a box)."""
    lows = {"top_k": 0, "max_trials": 1, "epochs": 1, "image_size": 8, "top": 1}
    for name, value in values.items():
        if value is not None and value < lows[name]:
            raise invalid_parameter(name, "run", f"an int in [{lows[name]}, inf)", value)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the search as Ctrl-C does: cleanly, with the leaderboard so far."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _summary(report: SearchReport, top: int) -> None:
    for note in [report.device_note, *report.notes]:
        if note:
            err_console.print(Text("note: ", style="yellow") + Text(note), highlight=False)
    console.print(_leaderboard(report, top))
    p = report.progress
    lines = [
        f"stopped: {report.stop_reason} after {report.elapsed_s:.0f} s of "
        f"{report.budget_s:.0f} s on {', '.join(report.devices)}; "
        f"{p.finished} trial(s) this run, {p.skipped} skipped as too long"
    ]
    if report.best is not None:
        where = f", copied to {report.output}" if report.output else ""
        lines.append(
            f"best: trial {report.best.trial} {display_name(report.best.arch)} "
            f"score {_fmt(report.best.score)} (run {report.best.run_id}){where}"
        )
    if report.refit:
        lines.append(report.refit)
    lines.append(f"resume with: mlsel run {report.dataset_name} ... --resume --name {report.name}")
    for line in lines:
        console.print(Text(line), highlight=False)


def register(app: typer.Typer) -> None:
    """Add `mlsel run` to the root app."""
    app.command("run")(run_command)
