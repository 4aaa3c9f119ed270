"""`mlsel feedback`: export the images a model is unsure of, import them once labelled."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mlsel.cli._common import console, print_json, state

__all__ = ["feedback_app", "register"]

feedback_app = typer.Typer(
    name="feedback",
    help="Hard examples: export the images a model is unsure of, label them, import them.",
    no_args_is_help=True,
)

ModelArg = Annotated[
    str, typer.Argument(help="A registered model: NAME (its champion) or NAME@alias.")
]
FolderArg = Annotated[Path, typer.Argument(help="The labelling folder.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@feedback_app.command("export")
def export_command(
    ctx: typer.Context,
    model: ModelArg,
    directory: FolderArg,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many images at most.")] = 100,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="least-confident (1 - top probability), margin (top two closest), entropy, "
            "cluster-margin (the hardest of each cluster of hard images), random (a seeded "
            "sample), or label-issues (training images whose label looks wrong).",
        ),
    ] = "least-confident",
    model_version: Annotated[
        int | None,
        typer.Option(
            "--model-version",
            help="Only the predictions of this version of NAME (default: every version's; "
            "the latest prediction of each image counts).",
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="The data NAME was trained on, when the store keeps no path of it (its "
            "images are left out; label-issues reads its training split).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random strategy.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Copy the images most worth labelling into DIR/unsure/, with a class folder for
    each class and a manifest; move each file into its class folder, then import."""
    from mlsel.metalearn.feedback import export_feedback

    with console.status(f"choosing images to label ({strategy})", spinner="dots"):
        report = export_feedback(
            model,
            directory,
            home=state(ctx).home,
            limit=limit,
            strategy=strategy,
            model_version=model_version,
            base=base,
            seed=seed,
        )
    if as_json:
        print_json(report.to_dict())
        return
    excluded = ", ".join(
        f"{n} {what.replace('_', ' ')}" for what, n in report.excluded.items() if n
    )
    console.print(
        f"exported {report.exported} image(s) of {report.model} ({report.strategy}, "
        f"{report.candidates} candidates{'; left out: ' + excluded if excluded else ''}) "
        f"to {escape(report.folder)}/unsure/",
        highlight=False,
    )
    for note in report.notes:
        console.print(f"  [yellow]note[/]: {escape(note)}", highlight=False)
    name = report.model.partition("@")[0]
    console.print(
        f"next: move each file into its class folder, then `mlsel feedback import {name} "
        f"{escape(report.folder)}`",
        highlight=False,
        soft_wrap=True,
    )


@feedback_app.command("import")
def import_command(
    ctx: typer.Context,
    model: ModelArg,
    directory: FolderArg,
    holdout: Annotated[
        float,
        typer.Option(
            "--holdout", min=0.0, max=0.99, help="Share of the new images held out for evaluation."
        ),
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the held-out choice.")] = 0,
    allow_new_classes: Annotated[
        bool,
        typer.Option(
            "--allow-new-classes", help="Accept a folder that is not a class as a new class."
        ),
    ] = False,
    base: Annotated[
        str | None,
        typer.Option(
            "--base", help="Build on this dataset instead of the latest version of NAME's data."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Merge the files moved into DIR's class folders into a new dataset version of NAME
    ($MLSEL_HOME/datasets/NAME/vN/); files left in unsure/ are not imported."""
    from mlsel.metalearn.feedback import import_feedback

    report = import_feedback(
        model,
        directory,
        home=state(ctx).home,
        holdout=holdout,
        seed=seed,
        allow_new_classes=allow_new_classes,
        base=base,
    )
    if as_json:
        print_json(report.to_dict())
        return
    if not report.imported:
        for note in report.notes:
            console.print(escape(note), highlight=False)
        return
    new = ", ".join(f"{label}: {n}" for label, n in report.new.items()) or "none"
    console.print(
        f"{report.name}/v{report.version}: {sum(report.new.values())} new image(s) "
        f"({escape(new)}), "
        f"{report.held_out} held out for evaluation, {report.relabelled} relabelled; "
        f"{sum(report.total.values())} images in all, built on {escape(report.base)}",
        highlight=False,
    )
    console.print(f"  fingerprint {report.fingerprint}", highlight=False)
    console.print(f"  folder {escape(report.path or '')}", highlight=False)
    for note in report.notes:
        console.print(f"  [yellow]note[/]: {escape(note)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `mlsel feedback ...` to the root app."""
    app.add_typer(feedback_app, name="feedback")
