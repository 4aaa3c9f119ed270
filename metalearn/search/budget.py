"""The wall-clock budget of a search: when to stop starting trials, stop running ones, kill.

A search promises to end within 5 % (or 30 s, whichever is larger) of the budget the user
gave. Three instants make that hold:

* ``stop_at``: running trials stop cleanly at their next epoch (logged as ``timeout``);
  it sits a little before the deadline so that the leaderboard and the copy of the best
  model still fit inside the budget;
* ``deadline``: start + budget;
* ``kill_at``: a worker still busy (one very long epoch) is terminated.

Times are ``time.time()`` values so that worker processes share them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mlsel.experiment_store.errors import ConfigError

__all__ = ["Budget"]


@dataclass(frozen=True)
class Budget:
    """A search's time budget, fixed when the command starts.

    Attributes:
        total_s: the budget in seconds.
        started: ``time.time()`` when the command started.
    """

    total_s: float
    started: float

    @classmethod
    def start(cls, total_s: float, started: float | None = None) -> Budget:
        """A budget of ``total_s`` seconds starting now (or at ``started``).

        Raises:
            ConfigError: ``total_s`` is not a positive number.
        """
        if not total_s > 0:
            raise ConfigError(
                f"The 'budget' parameter of run must be a positive number of seconds. "
                f"Got {total_s!r} instead."
            )
        return cls(total_s=float(total_s), started=time.time() if started is None else started)

    @property
    def tolerance_s(self) -> float:
        """How far past the budget the command may end: 5 % of it, or 30 s if larger."""
        return max(0.05 * self.total_s, 30.0)

    @property
    def deadline(self) -> float:
        return self.started + self.total_s

    @property
    def stop_at(self) -> float:
        """When running trials are asked to stop: a reserve before the deadline for wrap-up."""
        return self.deadline - min(0.03 * self.total_s, 10.0)

    @property
    def kill_at(self) -> float:
        """When a worker that did not stop is terminated: half the tolerance after the deadline."""
        return self.deadline + min(0.5 * self.tolerance_s, 0.05 * self.total_s + 5.0)

    def elapsed(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.started

    def left(self, now: float | None = None) -> float:
        """Seconds left until running trials must stop (never negative)."""
        return max(0.0, self.stop_at - (time.time() if now is None else now))

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.stop_at

    def fits(self, predicted_seconds: float | None, now: float | None = None) -> bool:
        """Whether a trial predicted to take ``predicted_seconds`` can finish in time.

        An unknown prediction (``None``) fits: the per-epoch stop still bounds it.
        """
        if predicted_seconds is None:
            return True
        return predicted_seconds <= self.left(now)
