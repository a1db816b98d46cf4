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
        return (f"{self.what} is running (started {elapsed} s ago, {self.fraction:.0%} done: "
                f"{self.message}). One training or tuning job runs at a time: try again when it ends.")


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
            self._state = JobState(what, self._state.started if self._state else time.time(),
                                   float(fraction), message)
            if progress is not None:
                progress(fraction, message)

        try:
            yield report
        finally:
            self._state = None
            self._lock.release()


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
                raise PermissionError(f"Too many wrong passwords: try again in "
                                      f"{int(self._locked_until - now) + 1} s.")
            if hmac.compare_digest(guess.encode(), self._password.encode()):
                self._failures.clear()
                return True
            self._failures = [t for t in self._failures if now - t < self._window] + [now]
            if len(self._failures) >= self._max:
                self._locked_until, self._failures = now + self._lockout, []
            return False
