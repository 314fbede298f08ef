"""Entry points the command line calls: windows around a running session.

:func:`run_windows` builds the QApplication, the orb and the dashboard, runs the
session's coroutine on the qasync loop (:mod:`ui.bridge`) and closes everything
cleanly when the dashboard is closed, on Ctrl+C or SIGTERM, or (optionally) when the
session ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from ui import bridge
from ui.dashboard import TherapistDashboard
from ui.orb import OrbWindow
from ui.view import SessionView

log = logging.getLogger(__name__)

SessionRun = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class WindowOptions:
    """Which windows, where. ``screen`` is the orb's display index (None: the last one);
    ``fullscreen`` None means full screen only when the orb has a display of its own."""

    orb: bool = True
    dashboard: bool = True
    screen: int | None = None
    fullscreen: bool | None = None
    words: bool = True
    word_scale: float = 1.0  # the orb's in/out words, times their usual size (TV: 2)
    partner_marks: bool = True
    autostart: bool = True
    quit_when_done: bool = False
    labels: tuple[str, ...] = ("A", "B")


def run_windows(session: SessionView, run: SessionRun | None, opts: WindowOptions) -> int:
    """Show the windows for ``session`` and run ``run()`` beside them; the exit code."""
    return bridge.run(lambda: serve(session, run, opts))


class Windows:
    """The open windows of one session and the task running it."""

    def __init__(self, session: SessionView, run: SessionRun | None, opts: WindowOptions):
        bridge.qt_app()  # windows closing must not quit Qt under the loop: we decide
        self.runner = bridge.SessionTask(run, on_change=self._on_change)
        self.dashboard: TherapistDashboard | None = None
        self.orb: OrbWindow | None = None
        self.closed = asyncio.Event()
        self.opts, self.session = opts, session
        if opts.dashboard:
            self.dashboard = TherapistDashboard(
                session, labels=opts.labels,
                on_start=self.runner.start if run is not None else None,
                on_stop=self.runner.stop,
                on_show_orb=self.open_orb if opts.orb else None)
            self.dashboard.closed.connect(self.closed.set)
            self.dashboard.show()
            fit_to_screen(self.dashboard)
        if opts.orb:
            self.open_orb()

    def open_orb(self) -> None:
        """Show the orb: a new window if it was closed, else bring it to the front."""
        if self.orb is not None and self.orb.isVisible():
            self.orb.raise_()
            self.orb.activateWindow()
            return
        self.orb = OrbWindow(self.session, show_words=self.opts.words,
                             word_scale=self.opts.word_scale,
                             show_partners=self.opts.partner_marks)
        if self.dashboard is None:  # the orb alone: closing it ends the app
            self.orb.closed.connect(self.closed.set)
        place_orb(self.orb, self.opts.screen, self.opts.fullscreen, beside=self.dashboard)

    def _on_change(self, state: bridge.RunState) -> None:
        log.info("session %s", state)
        if self.dashboard is not None:
            self.dashboard.set_running(state == "running", ended=state != "idle")

    def close(self) -> None:
        for w in (self.orb, self.dashboard):
            if w is not None and w.isVisible():
                w.close()


def place_orb(orb: QWidget, index: int | None, fullscreen: bool | None,
              beside: QWidget | None = None) -> None:
    """Put the orb on display ``index`` (default: the last), full screen if it is its own.

    On the dashboard's own screen the two share it side by side: the orb takes a column
    on the right and the dashboard keeps the rest, so the orb never covers the controls.
    """
    screens = QGuiApplication.screens()
    if index is not None and not 0 <= index < len(screens):
        log.warning("no display %d (there are %d); using the last one", index, len(screens))
        index = None
    screen = screens[index] if index is not None else screens[-1]
    own = len(screens) > 1 and screen is not QGuiApplication.primaryScreen()
    geo = screen.availableGeometry()
    if fullscreen if fullscreen is not None else own:
        orb.setScreen(screen)
        orb.setGeometry(screen.geometry())
        orb.showFullScreen()
        return
    width = max(orb.minimumWidth(), min(900, geo.width() // 3))  # frame included
    height = min(geo.height(), max(orb.minimumHeight(), width * 3 // 4))
    orb.show()  # the window frame's size is known once shown
    frame_w, frame_h = _frame_extra(orb)
    orb.resize(width - frame_w, height - frame_h)
    orb.move(geo.right() + 1 - width, geo.top())
    if beside is not None and beside.isVisible() and beside.screen() is screen:
        frame_w, frame_h = _frame_extra(beside)
        room = geo.width() - width - frame_w
        beside.resize(min(beside.width(), max(beside.minimumSizeHint().width(), room)),
                      min(beside.height(), geo.height() - frame_h))
        beside.move(geo.left(), geo.top())


def fit_to_screen(window: QWidget) -> None:
    """Shrink a shown window, frame included, to its screen's available area."""
    geo = window.screen().availableGeometry()
    frame_w, frame_h = _frame_extra(window)
    window.resize(min(window.width(), geo.width() - frame_w),
                  min(window.height(), geo.height() - frame_h))
    frame = window.frameGeometry()
    window.move(max(geo.left(), min(frame.x(), geo.right() + 1 - frame.width())),
                max(geo.top(), min(frame.y(), geo.bottom() + 1 - frame.height())))


def _frame_extra(window: QWidget) -> tuple[int, int]:
    """Width and height the window manager's frame adds to a shown window."""
    frame = window.frameGeometry()
    return frame.width() - window.width(), frame.height() - window.height()


async def serve(
    session: SessionView,
    run: SessionRun | None,
    opts: WindowOptions,
    on_open: Callable[[Windows], None] = lambda _: None,
) -> int:
    """Open the windows, run the session, wait for a reason to stop, close: exit code."""
    windows = Windows(session, run, opts)
    on_open(windows)
    waits = {asyncio.ensure_future(windows.closed.wait())}
    if opts.quit_when_done:
        waits.add(asyncio.ensure_future(windows.runner.finished.wait()))
    try:
        with bridge.stop_on_signals(windows.closed.set):
            if opts.autostart:
                windows.runner.start()
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        windows.runner.stop()
        await windows.runner.wait()
        windows.close()
    return 1 if windows.runner.state == "failed" else 0
