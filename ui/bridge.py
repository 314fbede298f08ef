"""The one place where asyncio meets Qt: a qasync event loop on the GUI thread.

The session's coroutine runs as an asyncio task on the same loop that delivers Qt's
events, so windows read states and send commands without threads or locks. Nothing
else in ``ui`` knows about qasync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Literal, TypeVar

import qasync
from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

T = TypeVar("T")
RunState = Literal["idle", "running", "ended", "failed", "stopped"]


def display_problem() -> str | None:
    """Why windows cannot open here (no screen on Linux), or None if they can."""
    import os

    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith("linux"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return "no screen to open windows on (DISPLAY is not set)"


def qt_app(argv: list[str] | None = None) -> QApplication:
    """The process's QApplication; it does not quit when a window closes (we decide)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    return app


def run(main: Callable[[], Coroutine[Any, Any, T]], argv: list[str] | None = None) -> T:
    """Run ``main()`` to completion on a qasync loop, then close that loop cleanly."""
    from coach.clock import run_on

    return run_on(qasync.QEventLoop(qt_app(argv)), main())


def event_on(qt_signal: SignalInstance) -> asyncio.Event:
    """An asyncio event set when a Qt signal fires (e.g. a window's ``closed``)."""
    event = asyncio.Event()
    qt_signal.connect(lambda *_: event.set())
    return event


@contextlib.contextmanager
def stop_on_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on SIGINT (Ctrl+C), SIGTERM or SIGHUP while the block runs.

    The loop's own handlers wake Qt's event loop through the signal wake-up fd, so a
    signal is handled at once even while Qt sits in C++ waiting for events.
    """
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            loop.add_signal_handler(sig, callback)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError) as exc:
            log.debug("no handler for %s: %s", sig, exc)  # not main thread, or Windows
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


class SessionTask:
    """The session's coroutine as a named asyncio task that can be started and stopped."""

    def __init__(
        self,
        run: Callable[[], Awaitable[Any]] | None,
        on_change: Callable[[RunState], None] = lambda _: None,
        name: str = "coach.session",
    ) -> None:
        self._run = run
        self._name = name
        self.on_change = on_change
        self.task: asyncio.Task[Any] | None = None
        self.state: RunState = "idle"
        self.error: BaseException | None = None
        self.finished = asyncio.Event()

    @property
    def can_start(self) -> bool:
        return self._run is not None and self.task is None

    def start(self) -> None:
        """Start the session (once); returns at once."""
        if not self.can_start:
            return
        assert self._run is not None
        self.task = asyncio.ensure_future(self._guarded(self._run()))
        self.task.set_name(self._name)
        self._set("running")

    def stop(self) -> None:
        """Ask the session to stop; returns at once (await :meth:`wait` to see it end)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def wait(self, timeout_s: float = 5.0) -> None:
        """Wait for the task to end, at most ``timeout_s`` seconds."""
        if self.task is None:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.wait({self.task})
        except TimeoutError:
            log.warning("session task did not stop within %.1f s", timeout_s)

    async def _guarded(self, coro: Awaitable[Any]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            self._set("stopped")
            raise
        except Exception as exc:  # the app reports it and exits non-zero
            self.error = exc
            log.exception("session failed")
            self._set("failed")
        else:
            self._set("ended")

    def _set(self, state: RunState) -> None:
        self.state = state
        if state != "running":
            self.finished.set()
        self.on_change(state)
