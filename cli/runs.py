"""`mlsel runs`: list the runs logged in the experiment store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlsel.cli._common import console, open_store, print_json
from mlsel.kernel.catalogue import RUN_SOURCES, RUN_STATUSES
from mlsel.kernel.errors import ConfigError, invalid_parameter

if TYPE_CHECKING:
    from mlsel.kernel.records import RunRecord

__all__ = ["register", "runs_command"]

_STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "failed": "red",
    "interrupted": "red",
    "pruned": "yellow",
    "timeout": "yellow",
}


def _check_choice(option: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise ConfigError(
            f"The {option} option must be one of {', '.join(choices)}. Got {value!r} instead."
        )


def run_summary(record: RunRecord, dataset_name: str) -> dict[str, Any]:
    """One run as the flat JSON object `mlsel runs --json` prints."""
    result = record.result
    return {
        "run_id": record.run_id,
        "dataset": record.dataset,
        "dataset_name": dataset_name,
        "source": record.source,
        "status": result.status,
        "score": result.score,
        "backend": record.config.backend,
        "arch": record.config.arch,
        "config": record.config.to_dict(),
        "metrics": dict(result.metrics),
        "epochs_logged": len(result.curve),
        "wall_seconds": result.wall_seconds,
        "seconds_per_epoch": result.seconds_per_epoch,
        "peak_gpu_mb": result.peak_gpu_mb,
        "peak_host_mb": result.peak_host_mb,
        "error": result.error,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
    }


def runs_command(
    ctx: typer.Context,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Only runs of this dataset (fingerprint or name)."),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help=f"Only runs with this status: {', '.join(RUN_STATUSES)}."),
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help=f"Only runs from: {', '.join(RUN_SOURCES)}.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="Show the N newest runs (0: all).")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List logged runs, newest first."""
    if limit < 0:
        raise invalid_parameter(
            "limit", "runs", "an int in [0, inf)", limit, fix="Pass 0 to show all runs."
        )
    _check_choice("--status", status, RUN_STATUSES)
    _check_choice("--source", source, RUN_SOURCES)
    store = open_store(ctx)
    records = store.list_runs(dataset=dataset, status=status, source=source, limit=limit or None)
    names = dict(store.datasets_frame().select("fingerprint", "name").iter_rows())
    if as_json:
        print_json([run_summary(r, names.get(r.dataset) or "") for r in records])
        return
    if not records:
        console.print("No runs match." if (dataset or status or source) else "No runs logged yet.")
        return
    console.print(_table(records, names))
    if limit and len(records) == limit:
        console.print(f"[dim]The {limit} newest runs; --limit 0 shows all.[/]")


def _table(records: list[RunRecord], names: dict[str, str]) -> Any:
    """One row a run; the source column only when the runs come from several sources, the
    start time only when the terminal is wide enough."""
    from rich.markup import escape
    from rich.table import Table

    sources = {r.source for r in records}
    several = len(sources) > 1
    table = Table(
        header_style="bold", caption=None if several else f"source: {next(iter(sources))}"
    )
    table.add_column("run id", no_wrap=True, min_width=16)
    table.add_column("dataset", overflow="ellipsis", max_width=22, min_width=7)
    table.add_column("arch", overflow="ellipsis", max_width=22, min_width=8)
    table.add_column("status", min_width=9)
    table.add_column("score", justify="right", min_width=6)
    table.add_column("epochs", justify="right", min_width=6)
    roomy, wide = console.width >= 90, console.width >= 100
    if roomy:
        table.add_column("seconds", justify="right", min_width=7)
    if several:
        table.add_column("source", min_width=7)
    if wide:
        table.add_column("when", no_wrap=True)
    for r in records:
        result = r.result
        style = _STATUS_STYLE.get(result.status, "")
        table.add_row(
            r.run_id,
            escape(names.get(r.dataset) or r.dataset[:12]),
            escape(r.config.arch),
            f"[{style}]{result.status}[/]" if style else result.status,
            "-" if result.score is None else f"{result.score:.4f}",
            f"{len(result.curve) or '-'}/{r.config.epochs}",
            *(
                [("-" if result.wall_seconds is None else f"{result.wall_seconds:.1f}")]
                if roomy
                else []
            ),
            *([r.source] if several else []),
            *([(r.started_at or "-").replace("T", " ")[5:16]] if wide else []),
        )
    return table


def register(app: typer.Typer) -> None:
    """Add `mlsel runs` to the root app."""
    app.command("runs")(runs_command)
