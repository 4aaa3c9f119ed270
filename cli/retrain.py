"""`mlsel retrain NAME`: a challenger for the champion, compared and promoted through gates."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from mlsel.cli._common import console, err_console, open_store, parse_duration, print_json, state

if TYPE_CHECKING:
    from mlsel.metalearn.retrain import RetrainReport

__all__ = ["register", "retrain_command", "show_report"]


def retrain_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The registered model (`mlsel models`).")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="A dataset version of NAME (v2, latest) or a dataset folder "
            "(default: the latest version, else the champion's dataset).",
        ),
    ] = None,
    budget: Annotated[
        str, typer.Option("--budget", "-b", help="Wall time of the challenger's search.")
    ] = "10m",
    gpus: Annotated[
        str, typer.Option("--gpus", help="all, a count, indices, cpu or cpu:N.")
    ] = "all",
    same_config: Annotated[
        bool,
        typer.Option(
            "--same-config", help="Train only the champion's config on the new data (one trial)."
        ),
    ] = False,
    max_trials: Annotated[
        int | None, typer.Option("--max-trials", min=1, help="Trials in all.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampler seed.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Train and decide, but do not promote.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Train a challenger for NAME@champion and promote it only if it passes the gates.

    The challenger's search starts from the champion's config. Both models predict the
    same held-out images: the champion's validation split plus the held-out part of every
    feedback batch. The gates are `mlsel models gates`. Exit code 0: promoted (or would be,
    with --dry-run); 1: refused.
    """
    started = time.time()
    from mlsel.cli.run import _print_event
    from mlsel.metalearn.retrain import retrain
    from mlsel.metalearn.search import SearchSettings

    settings = SearchSettings(
        budget_s=parse_duration(budget),
        gpus=gpus,
        warm_start=not same_config,
        max_trials=1 if same_config else max_trials,
        seed=seed,
        name=f"retrain-{name}-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    open_store(ctx)
    report = retrain(
        name,
        settings,
        home=state(ctx).home,
        data=data,
        dry_run=dry_run,
        on_event=None if as_json else _print_event,
        started=started,
    )
    if as_json:
        print_json(report.to_dict())
    else:
        show_report(report)
    if not (report.promoted or (dry_run and all(check.passed for check in report.checks))):
        raise typer.Exit(code=1)


def show_report(report: RetrainReport) -> None:
    """The comparison table, each gate's verdict, and the decision."""
    from rich.table import Table

    champion, challenger = report.champion, report.challenger
    table = Table(
        title=f"{report.name}: champion against challenger, {champion.n_images} held-out images"
    )
    for column in ("", "champion", "challenger"):
        table.add_column(column)
    if challenger is not None:
        table.add_row("model", champion.ref, challenger.ref)
        table.add_row("macro F1", f"{champion.macro_f1:.4f}", f"{challenger.macro_f1:.4f}")
        table.add_row("accuracy", f"{champion.accuracy:.4f}", f"{challenger.accuracy:.4f}")
        table.add_row("ms per image", f"{champion.latency_ms:.2f}", f"{challenger.latency_ms:.2f}")
    console.print(table)
    for check in report.checks:
        mark = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        console.print(f"{mark} {check.gate}: {escape(check.detail)}", highlight=False)
    for note in report.notes:
        err_console.print(f"[dim]{escape(note)}[/]", highlight=False)
    style = "green" if report.promoted else "yellow"
    console.print(f"[{style}]{escape(report.decision)}[/]", highlight=False)
    if report.report_dir is not None:
        console.print(f"report: {report.report_dir}/report.md", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `mlsel retrain` to the root app."""
    app.command("retrain")(retrain_command)
