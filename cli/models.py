"""`mlsel models`: the registry of named models, their aliases, and the promotion gates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mlsel.cli._common import console, print_json, state

if TYPE_CHECKING:
    from mlsel.experiment_store import ModelVersion

__all__ = ["models_app", "register"]

models_app = typer.Typer(
    name="models",
    help="Named models (NAME@champion, NAME@v3, ...): list, promote, roll back, gates.",
    invoke_without_command=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AliasOption = Annotated[str, typer.Option("--alias", help="The alias to move.")]


def _score(version: ModelVersion) -> str:
    value = version.evaluation.get("macro_f1")
    return "-" if value is None else f"{float(value):.4f}"


@models_app.callback()
def models_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List every version of every named model, with its aliases and lineage."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from mlsel.experiment_store import Store

    versions = Store.open(state(ctx).home).registry.versions()
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    if not versions:
        console.print(
            "No named models yet. Promote a run: mlsel models promote NAME RUN_ID "
            "(`mlsel runs` lists the runs).",
            highlight=False,
        )
        return
    table = Table(title=f"{len(versions)} model versions")
    for column in ("model", "aliases", "run", "trained on", "parent", "macro F1", "by", "when"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            v.ref,
            ", ".join(v.aliases) or "-",
            v.run_id,
            v.dataset_version or v.dataset[:12],
            f"v{v.parent}" if v.parent else "-",
            _score(v),
            escape(v.promoted_by),
            v.created_at,
        )
    console.print(table)


@models_app.command("promote")
def promote_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model's name, e.g. cats.")],
    run: Annotated[
        str,
        typer.Argument(help="A run id, `best` (with --dataset) or a search name."),
    ],
    alias: AliasOption = "champion",
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="The dataset `best` refers to.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Make RUN the model NAME@ALIAS (a new version of NAME unless RUN already is one)."""
    from mlsel.experiment_store import Store
    from mlsel.kernel.errors import ConfigError
    from mlsel.metalearn.models import resolve_model

    home = state(ctx).home
    resolved = resolve_model(run, dataset=dataset, home=home)
    if resolved.run_id is None:
        raise ConfigError(
            f"{run!r} is an export folder, not a run: promote the run it came from "
            "(its metadata.json names it)."
        )
    registry = Store.open(home).registry
    before = registry.find(name, alias)
    version = registry.promote(name, resolved.run_id, alias=alias, by="user")
    if as_json:
        print_json(version.to_dict())
        return
    was = f" (was v{before.version})" if before and before.version != version.version else ""
    console.print(
        f"{name}@{alias} is now {version.ref}{was}: run {version.run_id}.", highlight=False
    )


@models_app.command("rollback")
def rollback_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model's name.")],
    alias: AliasOption = "champion",
    as_json: JsonFlag = False,
) -> None:
    """Point NAME@ALIAS back at the version it held before its latest change."""
    from mlsel.experiment_store import Store

    registry = Store.open(state(ctx).home).registry
    before = registry.get(name, alias)
    version = registry.rollback(name, alias, by="user")
    if as_json:
        print_json(version.to_dict())
        return
    console.print(
        f"{name}@{alias} rolled back from v{before.version} to {version.ref} "
        f"(run {version.run_id}).",
        highlight=False,
    )


@models_app.command("gates")
def gates_command(
    ctx: typer.Context,
    min_gain: Annotated[
        float | None,
        typer.Option("--min-gain", help="Macro F1 a challenger must add to the champion's."),
    ] = None,
    max_class_drop: Annotated[
        float | None,
        typer.Option("--max-class-drop", help="Largest drop of any class's recall allowed."),
    ] = None,
    max_latency_ratio: Annotated[
        float | None,
        typer.Option("--max-latency-ratio", help="Largest challenger/champion latency ratio."),
    ] = None,
    min_class_support: Annotated[
        int | None,
        typer.Option(
            "--min-class-support",
            help="Held-out images a class needs to be held to --max-class-drop.",
        ),
    ] = None,
    class_drop_alpha: Annotated[
        float | None,
        typer.Option(
            "--class-drop-alpha",
            help="Level of the paired sign test a class's drop must pass to count (1: every "
            "drop counts).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the promotion gates of `mlsel retrain`, or change them."""
    from mlsel.experiment_store import Store
    from mlsel.metalearn.retrain import Gates

    store = Store.open(state(ctx).home)
    changes: dict[str, Any] = {
        key: value
        for key, value in (
            ("min_gain", min_gain),
            ("max_class_drop", max_class_drop),
            ("max_latency_ratio", max_latency_ratio),
            ("min_class_support", min_class_support),
            ("class_drop_alpha", class_drop_alpha),
        )
        if value is not None
    }
    gates = Gates.load(store)
    if changes:
        gates = gates.with_(**changes)
        gates.save(store)
    if as_json:
        print_json(gates.to_dict())
        return
    for line in gates.describe():
        console.print(line, highlight=False)


def register(app: typer.Typer) -> None:
    """Add `mlsel models ...` to the root app."""
    app.add_typer(models_app, name="models")
