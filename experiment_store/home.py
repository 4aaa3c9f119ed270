"""Where mlsel keeps its data: ``$MLSEL_HOME`` (default ``~/.mlsel``).

Layout::

    $MLSEL_HOME/
        experiments.duckdb   the experiment store
        runs/<run_id>/       artifacts of one run (weights, plots, metadata)
        rankers/             fitted meta-models
        searches/            Optuna studies of `mlsel run`, for --resume
        cache/               profiles' and trainers' caches
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["STORE_FILENAME", "resolve_home", "runs_dir", "store_path"]

STORE_FILENAME = "experiments.duckdb"


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The mlsel home: ``home`` if given, else ``$MLSEL_HOME``, else ``~/.mlsel``."""
    if home is None or str(home) == "":
        home = os.environ.get("MLSEL_HOME") or Path.home() / ".mlsel"
    return Path(home).expanduser().resolve()


def store_path(home: str | os.PathLike[str] | None = None) -> Path:
    """Path of the experiment store file under ``home``."""
    return resolve_home(home) / STORE_FILENAME


def runs_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding one artifact folder per run."""
    return resolve_home(home) / "runs"
