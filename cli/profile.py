"""``mlsel profile``: read a dataset, check it, and show its meta-features."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlsel.cli._common import console, err_console, print_json, state

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from mlsel.kernel.dataset import Dataset
    from mlsel.kernel.records import DatasetProfile

__all__ = ["profile_command", "register"]


def _progress_bar() -> tuple[Progress, Callable[[str, int, int], None]]:
    """A Rich progress bar on stderr and the ``progress(stage, done, total)`` feeding it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update


def _render(dataset: Dataset, profile: DatasetProfile) -> None:
    from rich.table import Table

    from mlsel.profilers.datacard import format_value
    from mlsel.profilers.features import FEATURES, GROUPS

    console.print(
        f"[bold]{dataset.name}[/]: {dataset.task}, {dataset.layout}, "
        f"{len(dataset.items):,} images, {dataset.num_classes} classes, "
        f"fingerprint {dataset.fingerprint}"
    )
    for group in GROUPS:
        table = Table(title=group.capitalize(), title_justify="left", show_header=False)
        table.add_column("feature", style="cyan")
        table.add_column("value", justify="right")
        table.add_column("meaning", style="dim")
        for name, value in profile.features.items():
            feature = FEATURES.get(name)
            if feature is None or feature.group != group or math.isnan(value):
                continue
            table.add_row(name, format_value(name, value), feature.description)
        if table.row_count:
            console.print(table)
    for warning in profile.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def profile_command(
    ctx: typer.Context,
    dataset: Annotated[
        Path, typer.Argument(help="Dataset folder, YOLO data.yaml or CSV manifest.")
    ],
    task: Annotated[
        str | None, typer.Option("--task", help="Force the task: classify or detect.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
    card: Annotated[
        Path | None, typer.Option("--card", help="Also write a Markdown data card here.")
    ] = None,
    no_landmarkers: Annotated[
        bool, typer.Option("--no-landmarkers", help="Skip the learner probes (faster).")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and samples.")] = 0,
) -> None:
    """Profile DATASET: layout, checks, and meta-features (cached in the store)."""
    from mlsel.experiment_store import Store
    from mlsel.profilers import read_dataset
    from mlsel.profilers.datacard import data_card
    from mlsel.profilers.profile import profile_cached

    if task is not None and task not in ("classify", "detect"):
        raise typer.BadParameter(f"must be classify or detect, got {task!r}", param_hint="--task")
    bar, update = _progress_bar()
    with bar:
        data = read_dataset(dataset, task, seed=seed, progress=update)
        store = Store.open(state(ctx).home)
        profile = profile_cached(data, store, landmarkers=not no_landmarkers, progress=update)
    if card is not None:
        card.parent.mkdir(parents=True, exist_ok=True)
        card.write_text(data_card(data, profile), encoding="utf-8")
    if as_json:
        print_json(
            {
                "name": data.name,
                "path": data.root,
                "task": data.task,
                "layout": data.layout,
                "fingerprint": data.fingerprint,
                "classes": list(data.classes),
                "split_source": data.split_source,
                "profiler_version": profile.profiler_version,
                "features": {
                    k: (None if math.isnan(v) else v) for k, v in profile.features.items()
                },
                "warnings": list(profile.warnings),
            }
        )
        return
    _render(data, profile)
    if card is not None:
        console.print(f"data card written to {card}")


def register(app: typer.Typer) -> None:
    """Add ``mlsel profile`` to the root app."""
    app.command("profile")(profile_command)
