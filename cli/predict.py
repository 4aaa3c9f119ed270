"""`mlsel predict`: the labels of images, with a trained run or an exported folder."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mlsel.cli._common import console, err_console, print_json, state

if TYPE_CHECKING:
    from mlsel.metalearn.models import ResolvedModel

__all__ = ["predict_command", "register"]

_PROGRESS_FROM = 64  # more files than this show a progress bar (on stderr)


def _files(given: list[Path]) -> list[Path]:
    from mlsel.profilers import list_images

    out: list[Path] = []
    for path in given:
        out.extend(list_images(path)[0] if path.is_dir() else [path])
    return out


def _write_csv(rows: list[dict[str, Any]], top_k: int) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    header = ["path", "label", "probability"]
    for k in range(2, top_k + 1):
        header += [f"label_{k}", f"probability_{k}"]
    writer.writerow(header)
    for row in rows:
        cells = [row["path"], row["label"], f"{row['probability']:.6f}"]
        for extra in row["top_k"][1:]:
            cells += [extra["label"], f"{extra['probability']:.6f}"]
        writer.writerow(cells)


def _log(
    ctx: typer.Context,
    resolved: ResolvedModel,
    classes: Sequence[str],
    rows: list[dict[str, Any]],
) -> None:
    """Record ``rows`` in the store's prediction log (``--log``)."""
    from mlsel.experiment_store.store import Store
    from mlsel.metalearn.prediction_log import export_identity, log_file_predictions, logged_model

    if resolved.exported is not None:
        model_id, run_id = export_identity(resolved.exported)
    else:  # a trained run (resolve_model's contract: a run id, or an export)
        run_id = resolved.run_id
        model_id = run_id or resolved.how
    who = logged_model(
        model_id,
        registry_name=resolved.registry_name,
        registry_version=resolved.registry_version,
        run_id=run_id,
    )
    count = log_file_predictions(
        Store.open(state(ctx).home),
        rows,
        model=who.model,
        model_version=who.model_version,
        run_id=who.run_id,
        classes=classes,
    )
    shown = f"{who.model}@v{who.model_version}" if who.model_version is not None else who.model
    err_console.print(f"[dim]logged {count} predictions of {escape(shown)}[/]", highlight=False)


def predict_command(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(
            help="A run id, `best` (with --dataset), a search name, or an exported folder."
        ),
    ],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Labels per image.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV rows.")] = False,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="The dataset of `best` (path or name).")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images decoded and run at once.")
    ] = 32,
    log: Annotated[
        bool,
        typer.Option(
            "--log",
            help="Record every prediction in the store (image hash, path, probabilities), "
            "for `mlsel feedback export`.",
        ),
    ] = False,
) -> None:
    """Predict the labels of IMAGES with MODEL, decoded as in training. An unreadable file
    is named on stderr with its reason, and the others are still predicted."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from mlsel.kernel.errors import ConfigError
    from mlsel.metalearn.models import resolve_model
    from mlsel.trainers.prediction import open_predictor

    if as_json and as_csv:
        raise ConfigError("Pass --json or --csv, not both.")
    resolved = resolve_model(model, dataset=dataset, home=state(ctx).home)
    predictor = open_predictor(run_dir=resolved.run_dir, exported=resolved.exported)
    files = _files(images)
    skipped: list[str] = []

    def skip(path: Path, reason: str) -> None:
        skipped.append(str(path))
        err_console.print(f"[yellow]skipped[/] {escape(reason)}", highlight=False, soft_wrap=True)

    progress = Progress(
        "predicting",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=len(files) <= _PROGRESS_FROM,
        transient=True,
    )
    with progress:
        task = progress.add_task("predict", total=len(files))
        rows = predictor.predict_files(
            files,
            top_k=top_k,
            batch_size=batch_size,
            on_skip=skip,
            on_batch=lambda done: progress.update(task, completed=done),
            probabilities=log,
        )
    if log:
        _log(ctx, resolved, predictor.classes, rows)
        rows = [{k: v for k, v in row.items() if k != "probabilities"} for row in rows]
    if as_json:
        print_json(rows)
    elif as_csv:
        _write_csv(rows, top_k)
    else:
        table = Table(title=f"{resolved.how}: {len(rows)} images")
        table.add_column("image", overflow="fold")
        table.add_column("label")
        table.add_column("probability", justify="right")
        if top_k > 1:
            table.add_column(f"top {top_k}")
        for row in rows:
            cells = [row["path"], row["label"], f"{row['probability']:.4f}"]
            if top_k > 1:
                cells.append(
                    ", ".join(f"{t['label']} {t['probability']:.3f}" for t in row["top_k"][1:])
                )
            table.add_row(*cells)
        console.print(table)
    if skipped:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add `mlsel predict` to the root app."""
    app.command("predict")(predict_command)
