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
import itertools
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from mqtt_fixtures import FakeSession, Mosquitto, sample_state
from test_mqtt_session import ROOM, Live, bridge_to, fast_backoff, live_session

from coach.mqtt import MqttBridge, RemoteSession, parse_broker_url
from coach.mqtt.url import BrokerURL
from coach.recording import Recorder, RecordingReader
from coach.types import Command
from ui.bridge import qt_app
from ui.dashboard import TherapistDashboard
from ui.liveness import NO_REMOTE_CONTROL

pytest_plugins = ["conftest_mqtt"]

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
                             backoff=fast_backoff)
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


async def stop_session(live: Live) -> None:
    live.session_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await live.session_task


@pytest.mark.qtloop
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_a_room_at_speed_5_draws_the_same_wave_remotely(
    qapp, mosquitto: Mosquitto
) -> None:
    """States carry session time; the remote view plots that, whatever the room's speed:
    its last 60 s of breathing wave are the local one's, sample for sample."""
    qt_app()
    url = mosquitto.handle.url()
    async with asyncio.timeout(60), live_session(bridge_to(url), speed=5.0) as live:
        view = RemoteSession(url, ROOM, backoff=fast_backoff)
        local, remote = open_dashboard(live.session), open_dashboard(view)
        view_task = asyncio.create_task(view.run(), name="test.view")
        try:
            await wait_for(lambda: remote.states_seen > 0, 10.0)
            await wait_for(lambda: live.clock.now() - live.session.t_origin_s > 75.0, 30.0)
            await stop_session(live)
            await asyncio.sleep(0.5)  # the last states reach the remote dashboard
            OUT.mkdir(exist_ok=True)
            remote.grab().save(str(OUT / "test_mqtt_dashboard_speed5_remote.png"))
        finally:
            view_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await view_task
            local.close()
            remote.close()
    gc.collect()
    lt = local.wave.t - live.session.t_origin_s
    rt = remote.wave.t - view.t_origin_s
    assert np.all(np.diff(rt) > 0)  # never back and forth in time
    assert rt[-1] > 62.0  # a minute of wave to compare
    keep_l, keep_r = lt >= rt[-1] - 60.5, rt >= rt[-1] - 60.0
    assert keep_r.sum() >= 60  # the bridge sends at most 12 of the 50 states a second
    for label in ("A", "B"):
        ly = local.wave.column(f"breath_{label}")[keep_l]
        ry = remote.wave.column(f"breath_{label}")[keep_r]
        at = np.searchsorted(lt[keep_l], rt[keep_r] - 1e-3)
        assert np.all(np.abs(lt[keep_l][at] - rt[keep_r]) < 1e-3)  # the same states
        same = np.isclose(ly[at], ry, atol=1e-3, equal_nan=True)
        assert same.all(), (label, np.flatnonzero(~same)[:5])
        assert np.isfinite(ry).sum() > 20  # breathing is known after the first ~30 s


@pytest.mark.qtloop
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_remote_control_off_refuses_and_records_nothing(
    qapp, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    qt_app()
    url = mosquitto.handle.url()
    path = tmp_path / "room.coach"
    recorder = Recorder(path, labels=("A", "B"), settings={"source": "test"})
    async with asyncio.timeout(40), live_session(bridge_to(url), recorder=recorder) as live:
        view = RemoteSession(url, ROOM, backoff=fast_backoff)
        remote = open_dashboard(view)
        view_task = asyncio.create_task(view.run(), name="test.view")
        try:
            await wait_for(lambda: remote.states_seen > 0 and view.presence is not None, 10.0)
            await wait_for(lambda: not remote.controls.marker_buttons["rupture"].isEnabled(),
                           2.0)
            # the buttons say why they are off; a view that sends anyway hears the room
            assert remote.controls.marker_buttons["rupture"].toolTip() == NO_REMOTE_CONTROL
            remote.controls.send(Command("marker", "rupture"))
            assert remote.controls.feedback.text() == "Sent: marker rupture"
            await wait_for(lambda: "refused" in remote.controls.feedback.text(), 5.0)
            assert remote.controls.feedback.text() == (
                "marker rupture: refused: remote control is off")
            # a refused switch goes back: the orb was not paused
            remote.controls.pause.setEnabled(True)
            remote.controls.pause.click()
            assert remote.controls.pause.text() == "Resume"
            await wait_for(lambda: remote.controls.pause.text() == "Pause", 5.0)
            assert not remote.controls.pause.isChecked()
            await stop_session(live)
        finally:
            view_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await view_task
            remote.close()
    gc.collect()
    with RecordingReader(path) as reader:
        assert list(reader.entries(("marker", "command"))) == []
        assert len(list(reader.states())) > 10


@pytest.mark.qtloop
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_an_arousal_alert_shows_remotely_as_locally(qapp, mosquitto: Mosquitto) -> None:
    """A's alert is on, B's unknown (its strap's beats cannot tell): both dashboards say so."""
    qt_app()
    url = mosquitto.handle.url()
    session = FakeSession()
    bridge = MqttBridge(session, url, ROOM, backoff=fast_backoff)
    view = RemoteSession(url, ROOM, backoff=fast_backoff)
    local, remote = open_dashboard(session), open_dashboard(view)

    async def pump() -> None:
        session.t_origin_s = session.clock.now()
        for k in itertools.count(1):
            await session.clock.sleep_until(session.t_origin_s + k / 10)
            s = sample_state(session.clock.now(), k)
            partners = {"A": replace(s.partners["A"], alert=True),
                        "B": replace(s.partners["B"], alert=None)}
            session.states.publish(replace(s, partners=partners))

    tasks = [asyncio.create_task(c) for c in (pump(), bridge.run(), view.run())]
    try:
        async with asyncio.timeout(15):
            await wait_for(lambda: remote.states_seen >= 3 and local.states_seen >= 3, 10.0)
            await asyncio.sleep(0.3)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        local.close()
        remote.close()
    gc.collect()
    assert "Partner A: arousal rising" in local.alert_text()
    assert remote.alert_text() == local.alert_text()
    assert remote.panels["A"].styleSheet() == local.panels["A"].styleSheet() != ""
    assert "arousal unknown" in local.panels["B"].strap.text()
    assert "arousal unknown" in remote.panels["B"].strap.text()
    assert "arousal unknown" not in remote.panels["A"].strap.text()
