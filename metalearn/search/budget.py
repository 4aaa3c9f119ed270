"""The wall-clock budget of a search: when to stop starting trials, stop running ones, kill.

A search promises to end within 5 % (or 30 s, whichever is larger) of the budget the user
gave. Three instants make that hold:

* ``stop_at``: running trials stop cleanly at their next epoch (logged as ``timeout``);
  it sits a little before the deadline so that the leaderboard and the copy of the best
  model still fit inside the budget;
* ``deadline``: start + budget;
* ``kill_at``: a worker still busy (one very long epoch) is terminated.

After the trials, the export and a final fit of the kept model take what is left of half
the tolerance (:meth:`Budget.wrap_up_left`).

Times are values of the budget's clock, ``time.time()`` unless a test injects another:
worker processes share it, so it must be picklable (a module-level function or object).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlsel.kernel.errors import invalid_parameter

__all__ = ["Budget", "Clock"]

Clock = Callable[[], float]


@dataclass(frozen=True)
class Budget:
    """A search's time budget, fixed when the command starts.

    Attributes:
        total_s: the budget in seconds.
        started: the clock's time when the command started.
        clock: what tells the time (``time.time``; tests inject a clock they drive).
    """

    total_s: float
    started: float
    clock: Clock = field(default=time.time, compare=False)

    @classmethod
    def start(
        cls, total_s: float, started: float | None = None, *, clock: Clock = time.time
    ) -> Budget:
        """A budget of ``total_s`` seconds starting now (or at ``started``).

        Raises:
            ConfigError: ``total_s`` is not a positive number.
        """
        if not total_s > 0:
            raise invalid_parameter("budget", "run", "a positive number of seconds", total_s)
        return cls(float(total_s), clock() if started is None else started, clock)

    def now(self) -> float:
        """The clock's time."""
        return self.clock()

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
        return (self.clock() if now is None else now) - self.started

    def left(self, now: float | None = None) -> float:
        """Seconds left until running trials must stop (never negative)."""
        return max(0.0, self.stop_at - (self.clock() if now is None else now))

    def wrap_up_left(self, now: float | None = None) -> float:
        """Seconds the work after the trials (the export, a final fit) may still take and
        end within half the tolerance past the deadline (never negative)."""
        end = self.deadline + 0.5 * self.tolerance_s
        return max(0.0, end - (self.clock() if now is None else now))

    def expired(self, now: float | None = None) -> bool:
        return (self.clock() if now is None else now) >= self.stop_at

    def fits(self, predicted_seconds: float | None, now: float | None = None) -> bool:
        """Whether a trial predicted to take ``predicted_seconds`` can finish in time.

        An unknown prediction (``None``) fits: the per-epoch stop still bounds it.
        """
        if predicted_seconds is None:
            return True
        return predicted_seconds <= self.left(now)
