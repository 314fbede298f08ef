"""Clocks: the only place that knows what time it is.

Everything that waits or stamps time takes a :class:`Clock`. :class:`RealClock` follows
the event loop's monotonic time, optionally sped up (``--speed 50``).
:class:`VirtualClock` runs its coroutine on an event loop whose time jumps to the next
deadline whenever every task is waiting, so a 15-minute session simulates in seconds,
deterministically (the idea of trio's ``MockClock(autojump_threshold=0)``).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    """Host time in seconds, and waiting for it."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep_until(self, t_s: float) -> None:
        """Return once ``now() >= t_s`` (at once if that is already so)."""
        ...

    async def sleep(self, dt_s: float) -> None:
        """Wait ``dt_s`` seconds of this clock's time."""
        ...

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` to completion on an event loop suited to this clock."""
        ...


class RealClock:
    """The event loop's monotonic time, sped up by ``speed`` (1 = real time).

    With speed > 1, ``now()`` runs ``speed`` times faster than the wall clock from the
    moment of the first call, so simulations at ``--speed 50`` keep their timing.
    """

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._origin: float | None = None

    def _loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    def now(self) -> float:
        t = self._loop_time()
        if self.speed == 1.0:
            return t
        if self._origin is None:
            self._origin = t
        return self._origin + (t - self._origin) * self.speed

    async def sleep_until(self, t_s: float) -> None:
        dt = t_s - self.now()
        if dt > 0:
            await asyncio.sleep(dt / self.speed)
        else:
            await asyncio.sleep(0)

    async def sleep(self, dt_s: float) -> None:
        if dt_s > 0:
            await self.sleep_until(self.now() + dt_s)
        else:
            await asyncio.sleep(0)

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(main)


POLL_EVERY = 16  # loop turns with work ready between two looks at real I/O


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that, instead of blocking until the next timer, jumps time there.

    Real I/O still works: ready sockets are polled first, and when no timer is pending
    at all the selector blocks for real I/O as usual. While callbacks are ready, I/O is
    polled every :data:`POLL_EVERY` turns rather than on each (a system call per turn
    is a good share of a busy replay).
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self._busy_turns = 0

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout == 0:
            self._busy_turns += 1
            if self._busy_turns < POLL_EVERY:
                return []
        self._busy_turns = 0
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            return super().select(None)
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time that starts at 0 and jumps when all tasks wait."""

    def __init__(self) -> None:
        self._jump = _JumpingSelector()
        super().__init__(self._jump)

    def time(self) -> float:
        return self._jump.now


class VirtualClock(RealClock):
    """Time that only passes when every task waits: as fast as the CPU allows.

    ``run()`` executes on a :class:`VirtualTimeLoop`; inside it, ``now()`` starts at 0.
    """

    def __init__(self) -> None:
        super().__init__(speed=1.0)
        self._selector: _JumpingSelector | None = None

    def now(self) -> float:
        if self._selector is None:  # not running (yet)
            return super().now()
        return self._selector.now

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        loop = VirtualTimeLoop()
        self._selector = loop._jump
        try:
            return run_on(loop, main)
        finally:
            self._selector = None


def run_on(loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on ``loop`` as the current loop; then cancel what is left, close it."""
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def clock_for_speed(speed: str | float) -> Clock:
    """``"max"`` -> :class:`VirtualClock`; a number -> :class:`RealClock` at that speed."""
    if isinstance(speed, str):
        if speed == "max":
            return VirtualClock()
        try:
            speed = float(speed)
        except ValueError:
            raise ValueError(f"speed must be a positive number or 'max', got {speed!r}") from None
    return RealClock(speed)
