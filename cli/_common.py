"""What every command module shares: the app state, consoles, JSON output, durations."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from mlsel.kernel.errors import ConfigError

__all__ = [
    "AppState",
    "console",
    "err_console",
    "open_store",
    "parse_duration",
    "print_json",
    "state",
]

console = Console()
err_console = Console(stderr=True)


@dataclass
class AppState:
    """Global options, set by the root callback and read by every command."""

    home: Path
    debug: bool = False
    no_bundled: bool = False


def state(ctx: typer.Context) -> AppState:
    """The :class:`AppState` of the running command."""
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):  # a command invoked without the root app
        from mlsel.kernel.home import resolve_home

        root.obj = AppState(home=resolve_home(None))
    return root.obj


def open_store(ctx: typer.Context) -> Any:
    """The store of the command's home; a new one is seeded with the bundled runs first."""
    from mlsel.experiment_store import Store
    from mlsel.metalearn.bundled import seed_bundled

    app_state = state(ctx)
    store = Store.open(app_state.home)
    seed_bundled(
        store,
        home=app_state.home,
        no_bundled=app_state.no_bundled,
        announce=lambda line: err_console.print(f"[dim]{line}[/]"),
    )
    return store


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout, for scripts (no Rich markup, no colour)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"30m"``, ``"1.5h"``.

    Raises:
        ConfigError: the text is not a number followed by s, m or h.
    """
    match = _DURATION.match(text.lower())
    if not match:
        raise ConfigError(
            f"The budget must be a number of seconds, minutes or hours such as 90s, 30m "
            f"or 2h. Got {text!r} instead."
        )
    value, unit = float(match.group(1)), match.group(2) or "s"
    seconds = value * {"s": 1, "m": 60, "h": 3600}[unit]
    if seconds <= 0:
        raise ConfigError(f"The budget must be positive. Got {text!r} instead.")
    return seconds
