"""A remote dashboard never shows a dead room as alive.

A real room (``coach demo --headless --mqtt ...`` in its own process) publishes through
a real Mosquitto; a :class:`TherapistDashboard` follows it through a
:class:`RemoteSession`, offscreen, on the qasync loop. The room is stopped (Ctrl+C) or
killed (-9): within 5 s of wall time the dashboard says "room offline" or "no data",
greys its cards, and none of them says "connected".
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_fixtures import PASSWORD, USER, Mosquitto, poll_until

from coach.mqtt import RemoteSession
from ui.bridge import qt_app
from ui.dashboard import TherapistDashboard

pytest_plugins = ["conftest_mqtt"]

ROOM = "room-9"
OUT = Path(__file__).resolve().parents[1] / "out"


@contextlib.contextmanager
def room_process(port: int, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``coach demo --headless`` publishing to the broker on ``port`` (ended by the test)."""
    env = {**os.environ, "COACH_MQTT_PASSWORD": PASSWORD}
    proc = subprocess.Popen(
        [sys.executable, "-m", "coach.cli", "demo", "--headless", "--duration", "600",
         "--mqtt", f"mqtt://{USER}@127.0.0.1:{port}/{ROOM}", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def says_connected(dash: TherapistDashboard) -> list[str]:
    return [k for k, p in dash.panels.items() if "connected" in p.strap.text()]


@pytest.mark.qtloop
@pytest.mark.parametrize("how", ["stopped", "killed"])
async def test_a_stopped_or_killed_room_is_shown_as_such(
    qapp, mosquitto: Mosquitto, how: str
) -> None:
    qt_app()
    view = RemoteSession(mosquitto.handle.url(), ROOM)
    dash = TherapistDashboard(view, labels=("A", "B"), fps=10)
    dash.resize(1280, 720)
    dash.show()
    loop = asyncio.get_running_loop()
    view_task = asyncio.create_task(view.run(), name="test.view")
    try:
        with room_process(mosquitto.port) as room:
            # the room's straps connect within a few seconds of the process starting
            await poll_until(lambda: dash.liveness.live and len(says_connected(dash)) == 2,
                             40.0, 0.05)
            assert view.room_online is True
            room.send_signal(signal.SIGINT if how == "stopped" else signal.SIGKILL)
            t_end = loop.time()
            await poll_until(lambda: not dash.liveness.live and not says_connected(dash),
                             5.0, 0.05)
            noticed_s = loop.time() - t_end
            OUT.mkdir(exist_ok=True)
            dash.grab().save(str(OUT / f"test_mqtt_liveness_{how}.png"))
    finally:
        view_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await view_task
        dash.close()
    # pyqtgraph's cycles collected here, on the GUI thread: a collection started by a later
    # test's worker thread would destroy Qt objects off the GUI thread
    gc.collect()
    assert noticed_s < 5.0
    banner = dash.alert_text()
    if how == "stopped":  # the room said goodbye: offline at once
        assert dash.liveness.word == "offline" and "room offline" in banner
    else:  # no goodbye: no data after 3 s (the will comes ~7 s after the crash)
        assert dash.liveness.word in ("no data", "offline")
        assert "no data from the room since" in banner or "room offline" in banner
    assert "stopped" in dash.header.run_state.text()
    for panel in dash.panels.values():
        assert panel.hr.text() == panel.rate.text() == "\u2013"
        assert dash.liveness.word in panel.strap.text()
    for widget in dash.controls.command_widgets():  # nothing can be sent to a dead room
        assert not widget.isEnabled()
