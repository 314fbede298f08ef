"""Entry points the command line calls: windows around a running session.

:func:`run_windows` builds the QApplication, the orb and the dashboard, runs the
session's coroutine on the qasync loop (:mod:`ui.bridge`) and closes everything
cleanly when the dashboard is closed, on Ctrl+C or SIGTERM, or (optionally) when the
session ends.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from coach.clock import Clock
from ui import bridge
from ui.dashboard import TherapistDashboard
from ui.orb import OrbWindow
from ui.view import SessionView

log = logging.getLogger(__name__)

SessionRun = Callable[[], Awaitable[Any]]
SIM_UNTIL_CLOSED_S = 12 * 3600.0  # s simulated when a demo runs "until closed"


@dataclass(frozen=True, slots=True)
class WindowOptions:
    """Which windows, where. ``screen`` is the orb's display index (None: the last one);
    ``fullscreen`` None means full screen only when the orb has a display of its own."""

    orb: bool = True
    dashboard: bool = True
    screen: int | None = None
    fullscreen: bool | None = None
    words: bool = True
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
        if opts.dashboard:
            self.dashboard = TherapistDashboard(
                session, labels=opts.labels,
                on_start=self.runner.start if run is not None else None,
                on_stop=self.runner.stop)
            self.dashboard.closed.connect(self.closed.set)
            self.dashboard.show()
        if opts.orb:
            self.orb = OrbWindow(session, show_words=opts.words,
                                 show_partners=opts.partner_marks)
            if self.dashboard is None:  # the orb alone: closing it ends the app
                self.orb.closed.connect(self.closed.set)
            place_orb(self.orb, opts.screen, opts.fullscreen)

    def _on_change(self, state: bridge.RunState) -> None:
        log.info("session %s", state)
        if self.dashboard is not None:
            self.dashboard.set_running(state == "running", ended=state != "idle")

    def close(self) -> None:
        for w in (self.orb, self.dashboard):
            if w is not None and w.isVisible():
                w.close()


def place_orb(orb: QWidget, index: int | None, fullscreen: bool | None) -> None:
    """Put the orb on display ``index`` (default: the last), full screen if it is its own."""
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
    else:
        orb.resize(min(900, geo.width() // 2), min(700, geo.height() // 2))
        orb.move(geo.right() - orb.width() - 20, geo.top() + 40)
        orb.show()


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


def run_demo_windows(args: argparse.Namespace, clock: Clock) -> int:
    """``coach demo`` with windows: a simulated couple that sees this session's orb.

    As headless, the straps are simulated Polar straps read by the real drivers; with
    ``--mqtt`` the session is also published to a broker, with ``--record FILE`` recorded
    (closed cleanly however the windows end: close, Ctrl+C, SIGTERM).
    """
    from coach.commands.demo import build, demo_settings, strap_sources
    from coach.commands.record import run_recorded

    session, world = build(clock, args.scenario, args.seed)
    duration = args.duration
    record = getattr(args, "record", None)

    async def simulate() -> None:
        sources, _ = strap_sources(world, clock, args.seed)
        publisher = None
        if getattr(args, "mqtt", None) is not None:
            from coach.mqtt import bridge_from_args

            publisher = bridge_from_args(session, args)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(world.run(duration or SIM_UNTIL_CLOSED_S), name="sim.world")
            mqtt = tg.create_task(publisher.run(), name="coach.mqtt") if publisher else None
            await run_recorded(session, sources, duration, record,
                               demo_settings(args.scenario, args.seed))
            if mqtt is not None:
                mqtt.cancel()

    opts = WindowOptions(
        orb=not getattr(args, "no_orb", False),
        dashboard=not getattr(args, "no_dashboard", False),
        screen=getattr(args, "screen", None),
        fullscreen=getattr(args, "fullscreen", None),
        quit_when_done=duration is not None,
        labels=tuple(world.labels),
    )
    return run_windows(session, simulate, opts)
