"""`mlsel refit`: retrain the ranker from the store, compare it with baselines, gate it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlsel.cli._common import console, open_store, print_json, state
from mlsel.kernel.errors import invalid_parameter

__all__ = ["refit_command", "register"]

_METRICS = ("regret@1", "regret@3", "ndcg@5")


def refit_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    folds: Annotated[
        int,
        typer.Option(
            "--folds",
            help="Hold datasets out in at most this many folds (0: one per dataset).",
        ),
    ] = 10,
) -> None:
    """Fit the ranker on every finished run, evaluate it against baselines, maybe activate it."""
    from mlsel.metalearn import refit

    if folds < 0:
        raise invalid_parameter(
            "folds", "refit", "an int in [0, inf)", folds, fix="Pass 0 for one fold per dataset."
        )
    home = state(ctx).home
    report = refit(open_store(ctx), home=home, max_folds=folds or None)
    if as_json:
        print_json(report.to_dict())
        return
    console.print(_table(report.evaluation["summary"]))
    evaluation = report.evaluation
    console.print(
        f"ranker {report.version}: {report.rows} runs, {report.n_datasets} datasets, "
        f"evaluated leave-one-{evaluation['group_by']}-out in {evaluation['folds']} folds"
    )
    if "candidate" in evaluation:
        console.print(_gate_table(evaluation))
    colour = "green" if report.activated else "yellow"
    verb = "activated" if report.activated else "not activated"
    console.print(f"[{colour}]{verb}[/]: {report.reason}")


def _table(summary: dict[str, dict[str, float]]) -> Any:
    from rich.table import Table

    table = Table(title="Leave-one-dataset-out (lower regret, higher NDCG is better)")
    table.add_column("method")
    for metric in _METRICS:
        table.add_column(metric, justify="right")
    for method, values in summary.items():
        style = "bold" if method == "ranker" else None
        table.add_row(method, *(f"{values[m]:.3f}" for m in _METRICS), style=style)
    return table


def _gate_table(evaluation: dict[str, Any]) -> Any:
    from rich.table import Table

    active, compared = evaluation["active"], evaluation["compared_on"]
    names = [d["name"] or d["dataset"] for fold in compared["folds"] for d in fold]
    shown = ", ".join(names[:6]) + (f", ... ({len(names) - 6} more)" if len(names) > 6 else "")
    table = Table(
        title=(
            f"The gate: both on the same {compared['n_datasets']} held-out datasets in "
            f"{compared['n_folds']} folds"
        ),
        caption=shown,
    )
    table.add_column("ranker")
    table.add_column("scored")
    for metric in ("regret@1", "ndcg@5"):
        table.add_column(metric, justify="right")
    rows = [
        ("candidate", "fitted on each fold", evaluation["candidate"]),
        (
            active["version"] if active["scored_by"] != "rules" else "rules",
            active["note"],
            active,
        ),
    ]
    for name, how, values in rows:
        table.add_row(name, how, *(f"{values[m]:.3f}" for m in ("regret@1", "ndcg@5")))
    return table


def register(app: typer.Typer) -> None:
    """Add `mlsel refit`."""
    app.command("refit")(refit_command)
