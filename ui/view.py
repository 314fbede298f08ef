"""What a window needs from a session, and reading its clock from a Qt slot."""

from __future__ import annotations

import logging
from typing import Protocol

from coach.bus import Bus
from coach.clock import Clock
from coach.types import Command, SessionState

log = logging.getLogger(__name__)


class SessionView(Protocol):
    """The part of :class:`coach.session.Session` the windows use."""

    states: Bus[SessionState]
    clock: Clock
    t_origin_s: float

    def command(self, cmd: Command) -> None:
        """Send a command; synchronous and never blocking."""
        ...


class ClockReader:
    """Reads a session clock from a Qt slot, keeping the last good reading.

    ``RealClock.now()`` asks the running asyncio loop for its time. Under qasync the loop
    is running whenever Qt delivers events, but a paint forced from outside it (a grab
    before the loop starts) must not raise inside ``paintEvent``: it reuses the last time.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = 0.0
        self._warned = False

    def now(self) -> float:
        try:
            self._last = self._clock.now()
        except RuntimeError:
            if not self._warned:
                log.debug("clock read outside a running loop; reusing %.3f", self._last)
                self._warned = True
        return self._last
