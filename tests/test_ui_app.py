"""The windows around a running session: start, stop, close, signals, a real session.

Tests marked ``qtloop`` run on a qasync loop, so Qt's events and the session's tasks
share one loop as in the app. They wait with :func:`wait_for`, which awaits (never
``qtbot.waitUntil`` there: processing Qt events inside a running task would re-enter
the loop) and always has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coach.types import Command
from ui.app import WindowOptions, Windows, serve

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out"
WINDOWED = WindowOptions(fullscreen=False)


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Await until ``predicate()`` holds; fail after ``timeout_s`` seconds."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.mark.qtloop
async def test_close_dashboard_stops_session(qapp, stand_in) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    holder: list[Windows] = []
    task = asyncio.ensure_future(serve(stand_in, run, WINDOWED, on_open=holder.append))
    await wait_for(lambda: started.is_set() and bool(holder))
    windows = holder[0]
    assert windows.dashboard is not None and windows.orb is not None
    assert windows.dashboard.header.run_state.text() == "running"
    windows.dashboard.close()
    async with asyncio.timeout(5):
        assert await task == 0
    assert cancelled.is_set()
    assert not windows.orb.isVisible()


@pytest.mark.qtloop
async def test_quits_when_done_and_reports_failure(qapp, stand_in) -> None:
    async def fine() -> None:
        await asyncio.sleep(0.05)

    async def broken() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("strap driver exploded")

    opts = WindowOptions(fullscreen=False, quit_when_done=True)
    async with asyncio.timeout(10):
        assert await serve(stand_in, fine, opts) == 0
        assert await serve(stand_in, broken, opts) == 1


@pytest.mark.qtloop
async def test_start_button_when_not_autostarted(qapp, stand_in) -> None:
    ran = asyncio.Event()

    async def run() -> None:
        ran.set()

    holder: list[Windows] = []
    opts = WindowOptions(fullscreen=False, autostart=False, orb=False)
    task = asyncio.ensure_future(serve(stand_in, run, opts, on_open=holder.append))
    await wait_for(lambda: bool(holder))
    await asyncio.sleep(0.1)
    assert not ran.is_set()
    dash = holder[0].dashboard
    assert dash is not None
    dash.controls.start_stop.click()
    await wait_for(ran.is_set)
    await wait_for(lambda: dash.header.run_state.text() == "ended")
    dash.close()
    async with asyncio.timeout(5):
        assert await task == 0


@pytest.mark.qtloop
async def test_real_session_and_simulated_couple(qapp) -> None:
    """The lead's Session fed by sims.World, in (sped-up) real time on the qasync loop."""
    from coach.clock import RealClock
    from coach.commands.demo import build

    clock = RealClock(speed=10.0)
    session, world = build(clock, "calm-anchor", 3)

    async def simulate() -> None:
        sources = world.sources()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(world.run(600.0), name="sim.world")
            await session.run(sources, None)

    holder: list[Windows] = []
    task = asyncio.ensure_future(serve(session, simulate, WINDOWED, on_open=holder.append))
    await wait_for(lambda: bool(holder))
    windows = holder[0]
    dash, orb = windows.dashboard, windows.orb
    assert dash is not None and orb is not None
    await wait_for(lambda: dash.states_seen >= 30 and orb.frames >= 30, timeout_s=15)
    controls = dash.controls
    controls.note.setText("first shared breath")
    controls.marker_buttons["touch"].click()
    await wait_for(lambda: dash.marker_log.count() == 1, timeout_s=5)
    assert "touch \u2013 first shared breath" in dash.marker_log.item(0).text()
    controls.ratio.setCurrentIndex(1)  # 4:7 reaches the real co-regulator
    await wait_for(lambda: session.coregulator.ie_ratio == pytest.approx(4 / 7))
    assert dash.panels["A"].hr.text().endswith("bpm")
    OUT.mkdir(exist_ok=True)
    dash.grab().save(str(OUT / "test_real_session_dashboard.png"))
    dash.close()
    async with asyncio.timeout(10):
        assert await task == 0
    assert windows.runner.state == "stopped"


def test_sigterm_closes_cleanly(tmp_path) -> None:
    code = textwrap.dedent(
        """
        import asyncio, sys
        sys.path.insert(0, "tests")
        from conftest import StandInSession
        from ui.app import WindowOptions, run_windows

        async def run():
            print("running", flush=True)
            await asyncio.sleep(3600)

        session = StandInSession()
        sys.exit(run_windows(session, run, WindowOptions(fullscreen=False)))
        """
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the child prints once the session task runs
        assert line.strip() == "running", line
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert time.monotonic() - t < 5.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]


def test_commands_reach_the_real_session() -> None:
    """A marker command becomes a Marker on the next published state (the next tick)."""
    from coach.clock import VirtualClock
    from coach.session import Session

    clock = VirtualClock()

    async def go() -> tuple:
        session = Session(clock)
        session.command(Command(kind="marker", value="repair", note="apology"))
        return session.publish(clock.now() + 0.1).markers

    markers = clock.run(go())
    assert [(m.kind, m.note) for m in markers] == [("repair", "apology")]


ORB_PLACEMENT = r"""
import asyncio, json, sys
from coach.clock import RealClock
from coach.session import Session
from ui import bridge
from ui.app import WindowOptions, serve

def rect(w):
    g = w.frameGeometry()
    return [g.x(), g.y(), g.width(), g.height()]

async def main():
    out = {}
    def on_open(w):
        async def look():
            await asyncio.sleep(0.3)
            first = w.orb
            out.update(dash=rect(w.dashboard), orb=rect(first), full=first.isFullScreen(),
                       orb_screen=first.screen().name(), dash_screen=w.dashboard.screen().name())
            first.close()
            await asyncio.sleep(0.1)
            w.dashboard.controls.show_orb.click()  # reopened from the dashboard
            await asyncio.sleep(0.2)
            out["reopened"] = w.orb is not first and w.orb.isVisible()
            out["again"] = rect(w.orb)
            w.closed.set()
        asyncio.ensure_future(look())
    await serve(Session(RealClock()), None, WindowOptions(), on_open)
    print(json.dumps(out))

bridge.run(main)
"""


def _screens(tmp_path: Path, *sizes: tuple[int, int]) -> str:
    screens, x = [], 0
    for k, (w, h) in enumerate(sizes):
        screens.append({"name": f"screen{k}", "x": x, "y": 0, "width": w, "height": h,
                        "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1})
        x += w
    path = tmp_path / "screens.json"
    path.write_text(json.dumps({"screens": screens}))
    return f"offscreen:configfile={path}"


def _place(tmp_path: Path, *sizes: tuple[int, int]) -> dict[str, Any]:
    env = {**os.environ, "QT_QPA_PLATFORM": _screens(tmp_path, *sizes)}
    out = subprocess.run([sys.executable, "-c", ORB_PLACEMENT], env=env, capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _overlap(a: list[int], b: list[int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_the_orb_opens_beside_the_dashboard_and_reopens(tmp_path: Path) -> None:
    """One 1366x768 laptop screen: the orb takes a column beside the dashboard, never
    over its controls; closed, it opens again from the dashboard's button."""
    got = _place(tmp_path, (1366, 768))
    assert not got["full"]
    assert not _overlap(got["orb"], got["dash"]), got
    for r in (got["orb"], got["dash"]):
        assert r[0] >= 0 and r[1] >= 0 and r[0] + r[2] <= 1366 and r[1] + r[3] <= 768, got
    assert got["reopened"] and not _overlap(got["again"], got["dash"])


def test_the_orb_goes_full_screen_on_a_second_screen(tmp_path: Path) -> None:
    got = _place(tmp_path, (1366, 768), (1920, 1080))
    assert got["full"] and got["orb_screen"] == "screen1" and got["dash_screen"] == "screen0"
    assert got["orb"] == [1366, 0, 1920, 1080]
