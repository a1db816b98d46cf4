"""Guards for a server that many people share: one heavy job at a time, and an admin password.

A Spark training or tuning job takes the machine's cores for minutes; started by several
visitors at once they would slow one another to a crawl (a tuning grid may be 1,001 fits).
:class:`JobSlot` lets one run at a time and tells the others what is running and how far it
got. :class:`AdminGate` checks ``ADMIN_PASSWORD`` for the actions that change what every
visitor is served (training, tuning, switching or deleting models), with a back-off after
wrong guesses. The app holds one of each per server process (``st.cache_resource``).
"""

from __future__ import annotations

import hmac
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass


class JobBusy(RuntimeError):
    """Another job holds the slot; the message says which and how far it got."""


@dataclass(frozen=True)
class JobState:
    what: str
    started: float
    fraction: float
    message: str

    def describe(self, now: float | None = None) -> str:
        elapsed = int((now or time.time()) - self.started)
        return (
            f"{self.what} is running (started {elapsed} s ago, {self.fraction:.0%} done: "
            f"{self.message}). One training or tuning job runs at a time: try again when it ends."
        )


class JobSlot:
    """At most one job at a time; its progress readable by everyone else.

    >>> slot = JobSlot()
    >>> with slot.run("Tuning") as progress:
    ...     progress(0.5, "fit 3 of 6")
    ...     slot.state().fraction
    0.5
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._state: JobState | None = None

    def state(self) -> JobState | None:
        """The running job, or None when the slot is free."""
        return self._state

    @contextmanager
    def run(self, what: str, progress=None):
        """Hold the slot for the block; raise :class:`JobBusy` at once when it is taken.

        Yields a ``progress(fraction, message)`` callback that records the job's state and
        passes it on to ``progress`` (e.g. the page's bar).
        """
        if not self._lock.acquire(blocking=False):
            running = self._state
            raise JobBusy(running.describe() if running else "Another job is running: try again shortly.")
        self._state = JobState(what, time.time(), 0.0, "starting")

        def report(fraction: float, message: str) -> None:
            self._state = JobState(what, self._state.started if self._state else time.time(), float(fraction), message)
            if progress is not None:
                progress(fraction, message)

        try:
            yield report
        finally:
            self._state = None
            self._lock.release()


def format_seconds(seconds: float) -> str:
    """ "45 s", "3 min 20 s", "1 h 5 min": how people say a duration."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s" if seconds % 60 else f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class Pace:
    """Time left from the pace measured so far: seconds per unit of work done, times the units left.

    A unit weighs a step by its relative cost (tuning: ALS iterations plus a fixed cost per fit),
    so the estimate holds from the first finished steps on, and it is redone at each step: no
    constant "about a minute" that a busy machine makes wrong.

    >>> pace = Pace(total=10, clock=iter([0.0, 4.0]).__next__)
    >>> pace.advance(2); pace.left()
    16.0
    """

    def __init__(self, total: float, clock=time.perf_counter):
        self.total, self.done, self._clock = float(total), 0.0, clock
        self.started = clock()

    def advance(self, units: float) -> None:
        self.done = min(self.total, self.done + units)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def left(self) -> float | None:
        """Seconds left at the pace so far; None before any work is done."""
        if self.done <= 0:
            return None
        return (self._clock() - self.started) / self.done * (self.total - self.done)

    def describe(self) -> str:
        """ "about 2 min 10 s left" (or "" before the first step has finished)."""
        left = self.left()
        return "" if left is None else f"about {format_seconds(left)} left"


def with_eta(progress, min_fraction: float = 0.05, clock=time.perf_counter):
    """Wrap ``progress(fraction, message)`` so each message ends with the time left at the pace so
    far (elapsed × (1 − f) / f), once ``min_fraction`` of the work is done. The fractions must
    be proportional to the work (as :func:`engine.recommender.training.train_and_evaluate` sets them).

    >>> seen = []
    >>> report = with_eta(lambda f, m: seen.append(m), clock=iter([0.0, 10.0, 20.0]).__next__)
    >>> report(0.01, "start"); report(0.5, "half"); seen
    ['start', 'half · about 20 s left']
    """
    started = clock()

    def report(fraction: float, message: str) -> None:
        elapsed = clock() - started
        if min_fraction <= fraction < 1:
            message = f"{message} · about {format_seconds(elapsed * (1 - fraction) / fraction)} left"
        progress(fraction, message)

    return report


class AdminGate:
    """Checks the admin password; after ``max_failures`` wrong guesses within ``window`` seconds
    every guess is refused for ``lockout`` seconds (server-wide: new sessions do not reset it)."""

    def __init__(self, password: str, max_failures: int = 5, window: float = 60.0, lockout: float = 60.0):
        self._password = password
        self._max, self._window, self._lockout = max_failures, window, lockout
        self._failures: list[float] = []
        self._locked_until = 0.0
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        """False when no ``ADMIN_PASSWORD`` is set (local use: everything is allowed)."""
        return bool(self._password)

    def check(self, guess: str, now: float | None = None) -> bool:
        """True for the right password; raises ``PermissionError`` while locked out."""
        now = time.time() if now is None else now
        with self._lock:
            if now < self._locked_until:
                raise PermissionError(f"Too many wrong passwords: try again in {int(self._locked_until - now) + 1} s.")
            if hmac.compare_digest(guess.encode(), self._password.encode()):
                self._failures.clear()
                return True
            self._failures = [t for t in self._failures if now - t < self._window] + [now]
            if len(self._failures) >= self._max:
                self._locked_until, self._failures = now + self._lockout, []
            return False
