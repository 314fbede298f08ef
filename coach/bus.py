"""In-process publish/subscribe of session states.

Views pull the latest state (``bus.latest``) or iterate a subscription. A subscription's
queue is bounded and drops its oldest item when a slow view falls behind, so a frozen
window can never grow memory or stall the pipeline; it counts what it dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Subscription(Generic[T]):
    """An async iterator over published items; unsubscribes itself when closed."""

    def __init__(self, bus: Bus[T], maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize)
        self.dropped = 0

    def _offer(self, item: T) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    def get_nowait(self) -> T | None:
        """The next item, or None if nothing is waiting."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self._bus._subs.discard(self)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        try:
            while True:
                yield await self._queue.get()
        finally:
            self.close()


class Bus(Generic[T]):
    """Fan-out of items to any number of subscribers; keeps the latest one."""

    def __init__(self) -> None:
        self._subs: set[Subscription[T]] = set()
        self.latest: T | None = None
        self.published = 0

    def publish(self, item: T) -> None:
        self.latest = item
        self.published += 1
        for sub in tuple(self._subs):
            sub._offer(item)

    def subscribe(self, maxsize: int = 64) -> Subscription[T]:
        sub: Subscription[T] = Subscription(self, maxsize)
        self._subs.add(sub)
        return sub
