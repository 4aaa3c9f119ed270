"""`mlsel store`: export, import and describe the experiment store."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mlsel.cli._common import console, open_store, print_json, state
from mlsel.kernel.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from mlsel.experiment_store import ImportReport

__all__ = ["register", "store_app"]

store_app = typer.Typer(
    name="store",
    help="Export, import, describe and configure the experiment store.",
    no_args_is_help=True,
)

_FORMATS = ("mlsel", "tracker-csv")
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
        str | None,
        typer.Option("--format", help="mlsel or tracker-csv (default: from the extension)."),
    ] = None,
    dataset_col: Annotated[
        str | None, typer.Option(help="tracker-csv: the dataset column [default: dataset].")
    ] = None,
    arch_col: Annotated[
        str | None, typer.Option(help="tracker-csv: the architecture column [default: model].")
    ] = None,
    score_col: Annotated[
        str | None, typer.Option(help="tracker-csv: the score column [default: eval_top1].")
    ] = None,
    score_scale: Annotated[
        float | None,
        typer.Option(help="tracker-csv: factor to a 0..1 score, 0.01 for % [default: 0.01]."),
    ] = None,
    status_col: Annotated[
        str | None, typer.Option(help="tracker-csv: the run state column [default: State].")
    ] = None,
    run_id_col: Annotated[
        str | None, typer.Option(help="tracker-csv: the tracker's run id column [default: ID].")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="tracker-csv: backend of the imported configs, e.g. timm [default: external]."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add the runs of an mlsel export or an experiment-tracker CSV; known runs are skipped."""
    from mlsel.experiment_store import Store, TrackerMapping

    if not file.is_file():
        raise StoreError(f"No file {file} to import. Check the path.")
    fmt = fmt or ("tracker-csv" if file.suffix.lower() in (".csv", ".tsv") else "mlsel")
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
    store = Store.open(state(ctx).home)
    if fmt == "mlsel":
        if overrides:
            raise ConfigError(
                f"--{next(iter(overrides)).replace('_', '-')} only applies to --format "
                "tracker-csv; an mlsel export needs no mapping."
            )
        report = store.import_file(file)
    else:
        report = store.import_tracker_csv(file, replace(TrackerMapping(), **overrides))
    if as_json:
        print_json({**asdict(report), "problems": list(report.problems)})
        return
    _print_report(report)


def _print_report(report: ImportReport) -> None:
    statuses = ", ".join(f"{n} {status}" for status, n in report.by_status.items())
    console.print(
        f"Imported {escape(report.path)} ({report.format}): added {report.runs_added} runs"
        + (f" ({statuses})" if statuses else "")
        + f", skipped {report.runs_skipped} already in the store; "
        f"{report.datasets_added} new datasets, {report.profiles_added} new profiles."
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
