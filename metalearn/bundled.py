"""The bundled experience: runs that ship with mlsel, seeded into a new store once.

``data_cards/bundled/runs.parquet`` is an mlsel store export made by the corpus harness
(``benchmarks/bundle``) on tasks derived from data that ships offline. On first use a
store imports it (its runs keep ``source = bundled``) and, when no ranker is active yet,
a first refit fits one, so ``mlsel suggest`` on a fresh machine uses learned knowledge.
The store remembers that it was seeded (setting ``bundled_seeded``), so runs a user
removes are not brought back. ``--no-bundled`` (``MLSEL_NO_BUNDLED=1``) or the store
setting ``bundled = false`` leave the bundled runs out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["BundledSeed", "bundled_file", "bundled_enabled", "seed_bundled"]

logger = logging.getLogger(__name__)

SEEDED_KEY = "bundled_seeded"
ENABLED_KEY = "bundled"


@dataclass(frozen=True)
class BundledSeed:
    """What seeding did: runs added, and the refit it triggered (or why none)."""

    runs_added: int
    datasets_added: int
    refit_version: str | None
    refit_activated: bool
    note: str


def bundled_file() -> Path | None:
    """The shipped export, or ``None`` when this install has none."""
    path = Path(str(resources.files("mlsel.data_cards"))) / "bundled" / "runs.parquet"
    return path if path.is_file() else None


def bundled_enabled(store: Any, no_bundled: bool = False) -> bool:
    """Whether this store takes the bundled runs (flag, environment, then setting)."""
    if no_bundled or os.environ.get("MLSEL_NO_BUNDLED", "").lower() in ("1", "true", "yes"):
        return False
    return str(store.get_setting(ENABLED_KEY, True)).lower() not in ("false", "0", "no")


def seed_bundled(
    store: Any,
    *,
    home: str | os.PathLike[str] | None = None,
    no_bundled: bool = False,
    path: str | os.PathLike[str] | None = None,
    announce: Callable[[str], None] | None = None,
) -> BundledSeed | None:
    """Import the bundled runs into ``store`` once, then fit a first ranker if none is active.

    Args:
        store: an open ``Store``.
        home: the mlsel home (where a fitted ranker is saved).
        no_bundled: leave the bundled runs out.
        path: the export to seed from (default: the shipped one).
        announce: called with one line before the (few seconds of) work starts.

    Returns:
        What was done, or ``None`` when nothing was (seeded before, disabled, no file).
    """
    if not bundled_enabled(store, no_bundled) or store.get_setting(SEEDED_KEY):
        return None
    source = Path(path) if path is not None else bundled_file()
    if source is None or not source.is_file():
        return None
    if announce is not None:
        announce("Seeding a new store with mlsel's bundled experience (once)...")
    report = store.import_file(source)
    store.set_setting(SEEDED_KEY, source.name)
    version, activated, note = None, False, f"added {report.runs_added} bundled runs"
    if store.active_ranker() is None:
        from mlsel.kernel.errors import RankerError
        from mlsel.metalearn._refit import refit

        try:
            refit_report = refit(store, home=home, max_folds=5)
        except RankerError as exc:
            note += f"; no ranker fitted: {exc}"
        else:
            version, activated = refit_report.version, refit_report.activated
            note += f"; ranker {version}: {refit_report.reason}"
    logger.info("bundled experience: %s", note)
    return BundledSeed(report.runs_added, report.datasets_added, version, activated, note)
