"""`mlsel export`: a trained model as a self-contained ONNX folder with ready code."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from mlsel.cli._common import console, err_console, print_json, state

__all__ = ["export_command", "register"]


def export_command(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(help="A run id, `best` (with --dataset), or a search name."),
    ],
    directory: Annotated[Path, typer.Argument(help="The folder to write (must not exist).")],
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="The dataset (path, fingerprint or name): for `best`, and its validation "
            "images for the parity check.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace DIR if it exists and is not empty.")
    ] = False,
    service: Annotated[
        bool, typer.Option("--service", help="Also write a REST service (app.py, Dockerfile).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Export MODEL to DIR: model.onnx, predict.py (onnxruntime, numpy and Pillow only),
    a README and a model card, after checking it predicts what the trained model does."""
    from mlsel.kernel.errors import ConfigError
    from mlsel.metalearn.models import resolve_model, validation_images
    from mlsel.trainers.export import export_model

    home = state(ctx).home
    resolved = resolve_model(model, dataset=dataset, home=home)
    if resolved.run_dir is None:
        raise ConfigError(
            f"{model} is an export already; copy the folder instead of exporting it again."
        )
    images = validation_images(resolved, dataset=dataset, home=home)
    with err_console.status(f"exporting {resolved.how}", spinner="dots"):
        report = export_model(
            resolved.run_dir,
            directory,
            force=force,
            service=service,
            parity_images=list(images.paths) or None,
            run_record=resolved.record,
            dataset_name=images.dataset_name,
        )
    notes = list(images.notes) or list(report.notes)  # the reason, else the export's note
    command = f"python {shlex.quote(str(report.folder / 'predict.py'))} IMAGES... --top-k 3"
    if as_json:
        print_json({**report.to_dict(), "model": resolved.how, "notes": notes, "predict": command})
        return
    console.print(f"exported {resolved.how} to {report.folder} in {report.seconds:.1f} s")
    console.print(f"  files: {', '.join(report.files)}", highlight=False)
    console.print(f"  parity: {report.parity.describe()}", highlight=False)
    for note in notes:
        console.print(f"  [yellow]note[/]: {note}", highlight=False)
    console.print(f"predict: {command}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `mlsel export` to the root app."""
    app.command("export")(export_command)
