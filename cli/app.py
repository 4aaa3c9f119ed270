"""The root ``mlsel`` app: global options, error handling, and the command modules.

Each command group lives in its own module with its own small Typer app; this module
only composes them. Heavy libraries are imported inside the commands, so that
``mlsel --help`` and ``mlsel runs`` start fast (a test checks that torch stays out).
"""

from __future__ import annotations

import errno
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from mlsel.cli import _common
from mlsel.kernel.errors import MlselError

__all__ = ["app", "main"]


def _version() -> str:
    try:
        return version("mlsel")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


class _MlselGroup(TyperGroup):
    """Turns user errors into one red line and a non-zero exit (``--debug``: traceback)."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except BrokenPipeError:  # the reader went away (`mlsel runs | head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(code=0) from None
        except Exception as exc:  # every error reaches the user as one line
            obj = ctx.obj
            if isinstance(obj, _common.AppState) and obj.debug:
                raise
            _common.err_console.print(
                f"[bold red]error:[/] {escape(_one_line(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=2 if isinstance(exc, MlselError) else 1) from None
        except KeyboardInterrupt:
            _common.err_console.print("[bold red]interrupted[/]: what was stored is kept.")
            raise typer.Exit(code=130) from None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, MlselError):
        return " ".join(str(exc).split())  # a message quoting DuckDB stays one line
    text = str(exc).strip()
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or (
        "No space left on device" in text  # DuckDB's IO errors carry only the text
    ):
        filename = exc.filename if isinstance(exc, OSError) else None
        where = Path(filename).parent if filename else "the disk"
        return (
            f"the disk is full: no space left on {where}: free space, then rerun; "
            "nothing stored was lost."
        )
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename}. Check the path or choose another with --home."
    first = text.splitlines()[0] if text else ""
    return (
        f"unexpected {type(exc).__name__}: {first}. Run again with --debug for the "
        "traceback and report it."
    )


app = typer.Typer(
    cls=_MlselGroup,
    name="mlsel",
    help="Pick and train the right vision model for your image dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"mlsel {_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="MLSEL_HOME",
            help="Where mlsel keeps its store and artifacts (default: ~/.mlsel).",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    no_bundled: Annotated[
        bool,
        typer.Option(
            "--no-bundled",
            envvar="MLSEL_NO_BUNDLED",
            help="Leave the bundled experience out of a new store.",
        ),
    ] = False,
    _version_flag: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """mlsel profiles your dataset, recommends models from logged experience, and trains them."""
    from mlsel.kernel.home import resolve_home

    ctx.obj = _common.AppState(home=resolve_home(home), debug=debug, no_bundled=no_bundled)


def _register() -> None:
    # One module per command group; each exposes `register(app)`, which adds its
    # command(s) or its sub-app. The order here is the order of `mlsel --help`.
    from mlsel.cli import (
        drift,
        export,
        feedback,
        models,
        predict,
        profile,
        refit,
        retrain,
        run,
        runs,
        sample,
        serve,
        store,
        suggest,
        train,
    )

    for module in (
        sample,
        profile,
        train,
        suggest,
        run,
        export,
        predict,
        serve,
        models,
        feedback,
        drift,
        retrain,
        runs,
        store,
        refit,
    ):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
