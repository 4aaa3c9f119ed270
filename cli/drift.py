"""`mlsel drift`: do new images still look like the model's training data?"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from mlsel.cli._common import console, err_console, print_json, state

if TYPE_CHECKING:
    from mlsel.metalearn.drift import DriftReport
    from mlsel.metalearn.models import ResolvedModel
    from mlsel.metalearn.retrain import RetrainReport

__all__ = ["DRIFT_EXIT", "drift_command", "register"]

DRIFT_EXIT = 3  # the exit code of a drift verdict (0: no drift; 1, 2: an error)


def _table(report: DriftReport, how: str) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=(
            f"{how}: {report.n_new} new images (of {report.n_images}) against "
            f"{report.n_reference} training images"
        )
    )
    table.add_column("view")
    table.add_column("figure", justify="right")
    table.add_column("threshold")
    table.add_column("", justify="center")
    table.add_column("in words", overflow="fold")
    profile, embedding, classes = report.profile, report.embedding, report.classes
    top = profile.shifts[0]
    rows = [
        (
            "profile",
            f"{top.smd:+.2f} sd ({top.name})",
            f"|SMD| >= {profile.threshold:g}",
            profile.moved,
            profile.words,
        ),
        (
            f"embeddings ({embedding.arch}, {embedding.image_size} px)",
            f"MMD² {embedding.mmd2:.4f}, p = {embedding.p_value:.3g}",
            f"p < {embedding.alpha:g}",
            embedding.drifted,
            embedding.words,
        ),
        (
            "predicted classes",
            f"TV {classes.tv:.3f}, p = {classes.p_value:.3g}",
            f"TV > {classes.tv_threshold:g} and p < {classes.alpha:g}",
            classes.drifted,
            classes.words,
        ),
    ]
    for view, figure, threshold, flagged, words in rows:
        mark = Text("moved" if flagged else "steady", style="bold red" if flagged else "green")
        table.add_row(view, figure, threshold, mark, Text(words))
    console.print(table)
    for note in report.notes:
        console.print(Text(f"note: {note}", style="dim"))
    console.print(Text(report.verdict, style="bold red" if report.drifted else "bold green"))


def drift_command(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(help="The model: NAME (its champion), NAME@alias, or a run id.")
    ],
    folder: Annotated[Path, typer.Argument(help="A folder of new images (any nesting).")],
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            help="The training data (folder or manifest), when it is no longer where the "
            "store says.",
        ),
    ] = None,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Significance level of the tests.")
    ] = 0.01,
    sample: Annotated[
        int, typer.Option("--sample", help="Most images measured a side (seeded).")
    ] = 200,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the samples and the permutation test.")
    ] = 0,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain",
            help="On drift, retrain the model (a registered NAME) on its latest dataset "
            "version, as `mlsel retrain NAME --budget BUDGET` does.",
        ),
    ] = False,
    budget: Annotated[
        str, typer.Option("--budget", "-b", help="The retrain's budget (with --retrain).")
    ] = "10m",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Compare the images in FOLDER with MODEL's training data: their profile (pixel
    statistics), their ImageNet embeddings (MMD permutation test) and the classes MODEL
    predicts for them. Exit code 0: no drift; 3: drift, so that a cron job can chain
    `mlsel drift M F || mlsel retrain M`. An unreadable image is named on stderr and left
    out."""
    from mlsel.metalearn.drift import drift_report
    from mlsel.metalearn.models import resolve_model

    if retrain:
        from mlsel.cli._common import parse_duration

        parse_duration(budget)  # a wrong --budget is refused before the images are read
    home = state(ctx).home
    resolved = resolve_model(model, dataset=None, home=home)

    def skip(path: Path, reason: str) -> None:
        err_console.print(f"[yellow]skipped[/] {escape(reason)}", highlight=False, soft_wrap=True)

    report = drift_report(
        resolved,
        folder,
        reference=reference,
        home=home,
        alpha=alpha,
        sample=sample,
        seed=seed,
        on_skip=skip,
    )
    if not as_json:
        _table(report, resolved.how)
    retrained = _retrain(ctx, resolved, budget, as_json) if report.drifted and retrain else None
    if as_json:
        data = report.to_dict()
        if retrained is not None:
            data["retrain"] = retrained.to_dict()
        print_json(data)
    if report.drifted:
        raise typer.Exit(code=DRIFT_EXIT)


def _retrain(
    ctx: typer.Context, resolved: ResolvedModel, budget: str, as_json: bool
) -> RetrainReport:
    """The retrain that ``--retrain`` starts on drift (the exit code stays the drift's)."""
    import time

    from mlsel.cli._common import parse_duration
    from mlsel.cli.retrain import show_report
    from mlsel.kernel.errors import ConfigError
    from mlsel.metalearn.retrain import retrain
    from mlsel.metalearn.search import SearchSettings

    if resolved.registry_name is None:
        raise ConfigError(
            f"--retrain needs a registered model (NAME or NAME@alias); {resolved.how} is not "
            "one. `mlsel models promote NAME RUN_ID` registers it."
        )
    name = resolved.registry_name
    settings = SearchSettings(
        budget_s=parse_duration(budget), name=f"retrain-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    err_console.print(f"drift found: retraining {name} ({budget})", highlight=False)
    report = retrain(name, settings, home=state(ctx).home, started=time.time())
    if not as_json:
        show_report(report)
    return report


def register(app: typer.Typer) -> None:
    """Add `mlsel drift` to the root app."""
    app.command("drift")(drift_command)
