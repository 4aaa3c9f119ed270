"""Every error mlsel raises on purpose, in one hierarchy, and the one message template.

::

    MlselError                 a user can act on it; the CLI prints it as one red line
    ├── StoreError             the experiment store cannot be opened, read or written
    │   └── StoreFormatError   the file at the store path is not an mlsel store
    ├── DatasetError           the dataset path, layout or content is unusable
    ├── TrainingError          a training run could not start or went wrong
    │   └── WeightsUnavailableError   pretrained weights asked for cannot be found
    ├── ExportError            a trained model cannot be exported, or its export predicts
    │                          differently from it (the parity check)
    ├── RankerError            the meta-model is missing, unfitted or mismatched
    └── ConfigError            a flag, setting or configuration value is invalid

    StopRun                    not an error: an epoch callback's signal to end a run early

Each message says what was wrong, what value arrived, and what to do next; parameters
checked at a public boundary use :func:`invalid_parameter`.
"""

from __future__ import annotations

from typing import TypeVar, overload

__all__ = [
    "ConfigError",
    "DatasetError",
    "ExportError",
    "MlselError",
    "RankerError",
    "StopRun",
    "StoreError",
    "StoreFormatError",
    "TrainingError",
    "WeightsUnavailableError",
    "invalid_parameter",
]


class MlselError(Exception):
    """Base class of the errors a user can act on."""


class StoreError(MlselError):
    """The experiment store cannot be opened, read or written."""


class StoreFormatError(StoreError):
    """The file at the store path is not an mlsel store (corrupt or foreign)."""


class DatasetError(MlselError):
    """The dataset path, layout or content is unusable."""


class TrainingError(MlselError):
    """A training run could not start or went wrong."""


class WeightsUnavailableError(TrainingError):
    """Pretrained weights were asked for and cannot be found or downloaded."""


class ExportError(MlselError):
    """A trained model cannot be exported, or its export predicts differently from it."""


class RankerError(MlselError):
    """The meta-model is missing, unfitted or does not match the features."""


class ConfigError(MlselError):
    """A flag, setting or configuration value is invalid."""


E = TypeVar("E", bound=MlselError)


@overload
def invalid_parameter(
    name: str, of: str, expected: str, got: object, *, fix: str = ""
) -> ConfigError: ...
@overload
def invalid_parameter(
    name: str, of: str, expected: str, got: object, *, fix: str = "", error: type[E]
) -> E: ...
def invalid_parameter(
    name: str,
    of: str,
    expected: str,
    got: object,
    *,
    fix: str = "",
    error: type[MlselError] = ConfigError,
) -> MlselError:
    """The error for a parameter outside its range, in the one template.

    ``invalid_parameter("epochs", "run", "an int in [1, inf)", -3)`` reads: "The 'epochs'
    parameter of run must be an int in [1, inf). Got -3 instead."

    Args:
        name: the parameter.
        of: what takes it (a command, a function, "the store").
        expected: what it must be.
        got: the value that arrived.
        fix: what to do, when the template does not say it already.
        error: the class of the error (default :class:`ConfigError`).
    """
    text = f"The {name!r} parameter of {of} must be {expected}. Got {got!r} instead."
    return error(f"{text} {fix}" if fix else text)


class StopRun(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by an epoch callback to end a run early with ``status``.

    The trainer stops cleanly and returns a result with that status and the curve so far.

    Args:
        status: ``pruned`` (a search pruner gave up on the trial), ``timeout`` (a
            deadline passed) or ``interrupted`` (the user stopped the search).
    """

    def __init__(self, status: str = "pruned") -> None:
        from mlsel.kernel.catalogue import STOP_STATUSES

        if status not in STOP_STATUSES:
            raise invalid_parameter("status", "StopRun", f"one of {list(STOP_STATUSES)}", status)
        super().__init__(status)
        self.status = status
