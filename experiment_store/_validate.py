"""Checks of what callers hand the store, once, at the public boundary.

Messages follow one template: what parameter, what it must be, what arrived.
"""

from __future__ import annotations

from typing import Any

from mlsel.kernel.catalogue import END_STATUSES, RUN_SOURCES
from mlsel.kernel.errors import StoreError, invalid_parameter
from mlsel.kernel.records import Config, RunResult

__all__ = ["check_config", "check_dataset", "check_result", "check_source"]


def _fail(param: str, must: str, got: Any) -> StoreError:
    return invalid_parameter(param, "the store", must, got, error=StoreError)


def check_dataset(fingerprint: Any) -> None:
    """A dataset fingerprint is a non-empty string."""
    if not isinstance(fingerprint, str) or not fingerprint.strip():
        raise _fail("dataset_fp", "a non-empty dataset fingerprint string", fingerprint)


def check_source(source: Any) -> None:
    """A run source is one of ``RUN_SOURCES``."""
    if source not in RUN_SOURCES:
        raise _fail("source", f"one of {', '.join(RUN_SOURCES)}", source)


def check_config(config: Any) -> None:
    """A config is a :class:`Config` with a backend and an architecture."""
    if not isinstance(config, Config):
        raise _fail("config", "a Config", type(config).__name__)
    if not config.arch or not config.backend:
        raise _fail("config", "a Config with a backend and an arch", config)


def check_result(result: Any) -> None:
    """A result is a :class:`RunResult` with a finished status."""
    if not isinstance(result, RunResult):
        raise _fail("result", "a RunResult", type(result).__name__)
    if result.status not in END_STATUSES:
        raise _fail("result.status", f"one of {', '.join(END_STATUSES)}", result.status)
