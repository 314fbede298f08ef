"""The remote dashboard shows what the local one shows.

A real session (simulated couple, real drivers, sped-up real clock) publishes through
its bridge to the embedded broker (``--mqtt embedded --allow-remote-control``); one
:class:`TherapistDashboard` watches the session in-process, another a
:class:`RemoteSession` following the room. Both run on the qasync loop, as in the app;
waits await with deadlines (never ``qtbot.waitUntil`` inside a coroutine).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from test_mqtt_session import ROOM, Live, bridge_to, fast_backoff, live_session

from coach.mqtt import RemoteSession, parse_broker_url
from coach.mqtt.url import BrokerURL
from ui.bridge import qt_app
from ui.dashboard import TherapistDashboard

OUT = Path(__file__).resolve().parents[1] / "out"
SPEED = 4.0  # session seconds per wall second: the orb starts within ~4 s
FPS = 10.0  # frames per second of each dashboard: two of them share the loop with the session


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Await until ``predicate()`` holds; fail after ``timeout_s`` seconds."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)


def number(text: str) -> float:
    """The number a label shows ("64 bpm" -> 64.0)."""
    found = re.search(r"-?\d+(?:\.\d+)?", text)
    assert found is not None, text
    return float(found.group())


def open_dashboard(session: object) -> TherapistDashboard:
    dash = TherapistDashboard(session, labels=("A", "B"), fps=FPS)  # type: ignore[arg-type]
    dash.resize(1280, 800)
    dash.show()
    return dash


def showing_final(live: Live, view: RemoteSession, local: TherapistDashboard,
                  remote: TherapistDashboard) -> bool:
    """Both dashboards have drawn the session's last state."""
    final = live.session.states.latest
    if final is None or local.latest is not final or remote.latest is None:
        return False
    return abs((remote.latest.t_s - view.t_origin_s) - live.rel(final)) < 1e-3


@pytest.mark.qtloop
# amqtt 0.12.1 on Python 3.11 can leave the server side of a closed connection for the GC
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_remote_dashboard_shows_what_the_local_one_shows(qapp) -> None:
    qt_app()  # as the app does: closing the last window must not stop the loop under us
    embedded = bridge_to(parse_broker_url("embedded"), allow_control=True)
    async with asyncio.timeout(40), live_session(embedded, speed=SPEED) as live:
        bridge = live.bridge
        await wait_for(lambda: bridge.port is not None and bridge.health.connected)
        assert bridge.port is not None
        view = RemoteSession(BrokerURL("mqtt", "127.0.0.1", bridge.port), ROOM,
                             clock=live.clock, backoff=fast_backoff)
        local, remote = open_dashboard(live.session), open_dashboard(view)
        view_task = asyncio.create_task(view.run(), name="test.view")
        try:
            await wait_for(lambda: remote.states_seen >= 3 and view.control_allowed, 10.0)
            # the therapist marks a repair on the remote dashboard; both logs show it
            remote.controls.note.setText("x")
            remote.controls.marker_buttons["repair"].click()
            await wait_for(lambda: local.marker_log.count() == 1
                           and remote.marker_log.count() == 1, 5.0)
            # the orb starts once both partners' breathing rates are known
            await wait_for(lambda: all(d.latest is not None and d.latest.pacer is not None
                                       for d in (local, remote)), 25.0)
            # end the session: both dashboards settle on its last state
            live.session_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await live.session_task
            await wait_for(lambda: showing_final(live, view, local, remote), 5.0)
            await asyncio.sleep(0.2)  # a few frames for the plots before the grabs
            OUT.mkdir(exist_ok=True)
            local.grab().save(str(OUT / "test_mqtt_dashboard_local.png"))
            remote.grab().save(str(OUT / "test_mqtt_dashboard_remote.png"))
            compare(local, remote)
        finally:
            view_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await view_task
            local.close()
            remote.close()
    gc.collect()  # that leak, collected here while the loop still runs (not at exit)
    assert view.stats.bad_messages == 0 and view.stats.resyncs == 0
    assert remote.states_seen >= 10


def compare(local: TherapistDashboard, remote: TherapistDashboard) -> None:
    """What a therapist reads on each: equal, numbers within the wire's rounding."""
    lh, rh = local.header, remote.header
    assert rh.time.text() == lh.time.text()
    assert rh.anchor.text() == lh.anchor.text()
    # "Orb <b>6.9</b> /min · in:out 4:6 · following the anchor"
    assert number(rh.pacer.text()) == pytest.approx(number(lh.pacer.text()), abs=0.11)
    assert rh.pacer.text().split("\u00b7", 1)[1] == lh.pacer.text().split("\u00b7", 1)[1]
    assert rh.holding.text() == lh.holding.text()
    assert remote.alert_text() == local.alert_text()
    assert set(remote.panels) == set(local.panels) == {"A", "B"}
    for label, lp in local.panels.items():
        rp = remote.panels[label]
        assert rp.badge.text() == lp.badge.text(), label
        # status word, battery and breathing source exactly; signal quality within rounding
        l_parts, r_parts = lp.strap.text().split(" \u00b7 "), rp.strap.text().split(" \u00b7 ")
        assert [p for p in r_parts if "signal" not in p] == [
            p for p in l_parts if "signal" not in p], label
        assert "connected" in lp.strap.text()
        assert number(rp.hr.text()) == pytest.approx(number(lp.hr.text()), abs=1.0)
        assert rp.hr.text().endswith("bpm")
        assert number(rp.rate.text()) == pytest.approx(number(lp.rate.text()), abs=0.11)
        assert rp.rmssd.text()[-2:] == lp.rmssd.text()[-2:]
        assert rp.calm.value() == pytest.approx(lp.calm.value(), abs=1)
        # the waveform ends at the same breath, now
        lx, ly = lp.breath_curve.getData()
        rx, ry = rp.breath_curve.getData()
        assert lx is not None and rx is not None
        assert rx[-1] == lx[-1] == pytest.approx(0.0)
        assert ry[-1] == pytest.approx(ly[-1], abs=2e-3)
    assert remote.marker_log.count() == local.marker_log.count() == 1
    l_mark, r_mark = local.marker_log.item(0).text(), remote.marker_log.item(0).text()
    assert r_mark.split("  ", 1)[1] == l_mark.split("  ", 1)[1] == "repair \u2013 x"
    mm_ss = lambda s: 60 * int(s[:2]) + int(s[3:5])  # noqa: E731
    assert abs(mm_ss(r_mark) - mm_ss(l_mark)) <= 1
