"""`mlsel store`: export, import and describe the experiment store."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mlsel.cli._common import console, open_store, print_json, state
from mlsel.kernel.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from mlsel.experiment_store import ImportReport, Store

__all__ = ["register", "store_app"]

store_app = typer.Typer(
    name="store",
    help="Export, import, describe and configure the experiment store.",
    no_args_is_help=True,
)

_FORMATS = ("auto", "mlsel", "wandb", "mlflow", "mlflow-ui", "tracker-csv")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _size(n_bytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024  # type: ignore[assignment]
    return f"{n_bytes} B"


@store_app.command("export")
def export_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The Parquet file to write, e.g. runs.parquet.")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite FILE if it exists already.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write every dataset, profile, run and epoch to one Parquet file (a backup)."""
    from mlsel.experiment_store import Store

    if file.exists() and not file.is_dir() and not force:
        raise StoreError(
            f"The export file {file} already exists. Choose another file name, or add "
            "--force to overwrite it."
        )
    counts = Store.open(state(ctx).home).export_parquet(file, overwrite=force)
    if as_json:
        print_json({"path": str(file.resolve()), **counts})
        return
    console.print(
        f"Exported {counts['run']} runs ({counts['epoch']} epochs) of {counts['dataset']} "
        f"datasets to {escape(str(file))} ({_size(file.stat().st_size)})."
    )


@store_app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="An mlsel export (.parquet) or a tracker CSV.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="auto (from the file), mlsel, wandb, mlflow (search_runs CSV), mlflow-ui "
            "(the UI's CSV download) or tracker-csv (a plain table).",
        ),
    ] = "auto",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show the format, identity, column mapping and counts; write nothing.",
        ),
    ] = False,
    dataset_col: Annotated[
        str | None,
        typer.Option(help="tracker CSV: the dataset column [default: found, e.g. dataset]."),
    ] = None,
    arch_col: Annotated[
        str | None,
        typer.Option(help="tracker CSV: the architecture column [default: found, e.g. model]."),
    ] = None,
    score_col: Annotated[
        str | None,
        typer.Option(help="tracker CSV: the score column [default: found, e.g. eval_top1]."),
    ] = None,
    score_scale: Annotated[
        float | None,
        typer.Option(
            help="tracker CSV: factor to a 0..1 score, 0.01 for % [default: 0.01 for a top1 "
            "score or values above 1, else 1]."
        ),
    ] = None,
    status_col: Annotated[
        str | None,
        typer.Option(help="tracker CSV: the run state column [default: found, e.g. State]."),
    ] = None,
    run_id_col: Annotated[
        str | None,
        typer.Option(
            help="tracker CSV: the tracker's run id column [default: found, e.g. ID or "
            "run_id; else the run name, else a hash of the row]."
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="tracker CSV: backend of the imported configs, e.g. timm [default: external]."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add the runs of an mlsel export or an experiment-tracker CSV; known runs are skipped.

    A tracker run is known by the tracker's own identity (its ID column, else its run name,
    else a hash of the row), never by the file's name: importing an export again, a slice
    of it or a later superset adds only the runs the store has not seen.
    """
    from mlsel.experiment_store import Store
    from mlsel.experiment_store._tracker import is_parquet
    from mlsel.kernel.home import Home

    if not file.is_file():
        raise StoreError(f"No file {file} to import. Check the path.")
    if fmt not in _FORMATS:
        raise ConfigError(
            f"The --format option must be one of {', '.join(_FORMATS)}. Got {fmt!r} instead."
        )
    overrides: dict[str, Any] = {
        "dataset_col": dataset_col,
        "arch_col": arch_col,
        "score_col": score_col,
        "score_scale": score_scale,
        "status_col": status_col,
        "run_id_col": run_id_col,
        "backend": backend,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if fmt == "auto" and is_parquet(file):
        fmt = "mlsel"
    with tempfile.TemporaryDirectory(prefix="mlsel-dry-run-") as scratch:
        store_path = Home.resolve(state(ctx).home).store
        # a dry run on a home without a store compares with an empty one, creating nothing
        if dry_run and not store_path.exists():
            store = Store.at(Path(scratch) / "empty.duckdb")
        else:
            store = Store.open(state(ctx).home)
        report = _import(store, file, fmt, overrides, dry_run)
    if as_json:
        print_json({**asdict(report), "problems": list(report.problems)})
        return
    _print_report(report)


def _import(
    store: Store, file: Path, fmt: str, overrides: dict[str, Any], dry_run: bool
) -> ImportReport:
    from mlsel.experiment_store import TrackerMapping

    if fmt == "mlsel":
        if overrides:
            raise ConfigError(
                f"--{next(iter(overrides)).replace('_', '-')} only applies to a tracker CSV; "
                "an mlsel export needs no mapping."
            )
        return store.import_file(file, dry_run=dry_run)
    mapping = replace(TrackerMapping(), **overrides)
    return store.import_tracker_csv(file, mapping, fmt=fmt, dry_run=dry_run)


def _print_report(report: ImportReport) -> None:
    statuses = ", ".join(f"{n} {status}" for status, n in report.by_status.items())
    if report.format != "mlsel":
        console.print(
            f"format {report.format}; a run is identified by {escape(report.identity)}",
            highlight=False,
        )
    if report.dry_run:
        for role, column in report.mapping.items():
            console.print(f"  [bold]{role:>15}[/]  {escape(column)}", highlight=False)
    left_out = "; ".join(f"{n} {why}" for why, n in report.rows_left_out.items())
    verb = "Would import" if report.dry_run else "Imported"
    console.print(
        f"{verb} {escape(report.path)} ({report.format}): "
        f"{'would add' if report.dry_run else 'added'} {report.runs_added} runs"
        + (f" ({statuses})" if statuses else "")
        + f", skipped {report.runs_skipped} already in the store"
        + (f", left out {left_out}" if left_out else "")
        + f"; {report.datasets_added} new datasets, {report.profiles_added} new profiles."
        + (" Nothing was written (--dry-run)." if report.dry_run else ""),
        highlight=False,
    )
    if report.rows_failed:
        console.print(f"[yellow]{report.rows_failed} rows could not be read:[/]")
        for line in report.problems[:10]:
            console.print(f"  {escape(line)}")


@store_app.command("info")
def info_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Where the store is, its schema version and size, and what it holds."""
    info = open_store(ctx).info()
    if as_json:
        print_json(info)
        return

    def counts(mapping: dict[str, int]) -> str:
        return ", ".join(f"{n} {key}" for key, n in mapping.items()) or "none"

    lines = [
        ("store", escape(info["path"])),
        ("schema version", str(info["schema_version"])),
        ("size on disk", _size(info["size_bytes"])),
        ("runs", f"{info['runs']} ({counts(info['runs_by_status'])})"),
        ("by source", counts(info["runs_by_source"])),
        ("datasets", f"{info['datasets']} ({info['profiles']} profiles)"),
        ("epochs", str(info["epochs"])),
        ("rankers", str(info["rankers"])),
    ]
    for label, value in lines:
        console.print(f"[bold]{label:>15}[/]  {value}", highlight=False)


# The settings a user may change, with their default and what they do.
SETTINGS: dict[str, tuple[Any, str]] = {
    "refit_every": (
        20,
        "refit the ranker after `mlsel run` once this many new runs were "
        "logged since the active ranker (0: never)",
    ),
    "bundled": (
        True,
        "seed this store with mlsel's bundled runs on first use "
        "(set before first use; same as --no-bundled)",
    ),
}


def _parse_setting(key: str, text: str) -> Any:
    default = SETTINGS[key][0]
    low = text.strip().lower()
    if isinstance(default, bool):
        if low not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"The setting {key} takes true or false. Got {text!r}.")
        return low in ("true", "1", "yes")
    try:
        value = int(low)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"The setting {key} takes a whole number >= 0. Got {text!r}.")
    return value


@store_app.command("set")
def set_command(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="Setting to change (none: list them).")] = None,
    value: Annotated[str | None, typer.Argument(help="Its new value.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the store's settings, or change one: `mlsel store set refit_every 50`."""
    from mlsel.experiment_store import Store

    store = Store.open(state(ctx).home)  # not seeded: `bundled` must be settable first
    if key is not None:
        if key not in SETTINGS:
            raise ConfigError(f"Unknown setting {key!r}. Known: {', '.join(SETTINGS)}.")
        if value is None:
            raise ConfigError(f"Give a value: mlsel store set {key} VALUE.")
        store.set_setting(key, _parse_setting(key, value))
    current = {name: store.get_setting(name, default) for name, (default, _) in SETTINGS.items()}
    if as_json:
        print_json(current)
        return
    for name, (_, meaning) in SETTINGS.items():
        console.print(
            f"[bold]{name}[/] = {_shown(current[name])}  [dim]{meaning}[/]", highlight=False
        )


def _shown(value: Any) -> str:
    """A setting as the user types it."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def register(app: typer.Typer) -> None:
    """Add `mlsel store ...` to the root app."""
    app.add_typer(store_app, name="store")
