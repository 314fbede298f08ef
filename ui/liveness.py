"""How old the newest state is, in wall time, and what a view may still claim.

A view that stops getting states must not keep showing the last one as if it were now:
after :data:`STALE_S` wall seconds without a state it says since when it has had no
data; a room whose retained presence says offline (its last will, or its goodbye) is
"offline" at once; an ended session is "ended". Commands are allowed only while the
view is live and the room takes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

STALE_S = 3.0  # wall seconds without a state before a view says it has no data
NO_REMOTE_CONTROL = ("the room does not take remote commands "
                     "(it runs without --allow-remote-control)")


@dataclass(frozen=True, slots=True)
class Liveness:
    live: bool
    word: str = ""  # "no data", "offline", "ended" when not live
    text: str = ""  # what the banner says when not live
    why_not: str = ""  # why commands cannot be sent now ("" = they can)


class LivenessWatch:
    """Watches one session view: call :meth:`saw_state` per state, :meth:`check` per frame."""

    def __init__(self, session: object, now: Callable[[], float] = time.monotonic) -> None:
        self.session = session
        self.remote = hasattr(session, "room_online")
        self._now = now
        self._opened_s = now()
        self._state_s: float | None = None
        self._state_clock = ""  # local time of day of the newest state, HH:MM:SS

    def saw_state(self) -> None:
        self._state_s = self._now()
        self._state_clock = datetime.now().strftime("%H:%M:%S")

    def age_s(self) -> float | None:
        """Wall seconds since the newest state; None before the first."""
        return None if self._state_s is None else self._now() - self._state_s

    def check(self, running: bool, ended: bool) -> Liveness:
        where = "the room" if self.remote else "the session"
        since = f" since {self._state_clock}" if self._state_clock else ""
        if self.remote and getattr(self.session, "room_online", None) is False:
            return Liveness(False, "offline", f"room offline (no data{since})",
                            "the room is offline")
        if ended:
            return Liveness(False, "ended", f"session ended (last data{since})",
                            "the session has ended")
        age = self.age_s()
        if age is None:
            waited = self._now() - self._opened_s
            if (self.remote or running) and waited > STALE_S:
                return Liveness(False, "no data", f"no data from {where} yet",
                                f"no data from {where}")
            return Liveness(True)
        if age > STALE_S:
            return Liveness(False, "no data", f"no data from {where}{since}",
                            f"no data from {where}")
        allowed = getattr(self.session, "control_allowed", True)
        return Liveness(True, why_not="" if allowed else NO_REMOTE_CONTROL)
