"""The real pipeline over MQTT: Session + simulated couple through the real strap drivers.

``coach demo``'s own wiring (:func:`coach.commands.demo.build` and ``strap_sources``)
runs on a sped-up :class:`RealClock`, its :class:`MqttBridge` publishing to Mosquitto
or the embedded broker, while a subscriber or a :class:`RemoteSession` watches. Every
wait is a poll with a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from mqtt_fixtures import BrokerHandle, Mosquitto, poll_until

from coach.clock import RealClock
from coach.commands.demo import build, strap_sources
from coach.mqtt import MqttBridge, RemoteSession, bridge_from_args
from coach.mqtt.link import Backoff, make_client
from coach.mqtt.url import BrokerURL
from coach.recording import Recorder, RecordingReader
from coach.session import Session
from coach.types import Command, SessionState

pytest_plugins = ["conftest_mqtt"]

ROOM = "room-3"
SPEED = 5.0  # session seconds per wall second
SIM_S = 600.0  # simulated seconds available; tests stop the session long before
SEED = 3
PACE_BPM = 5.0  # a pace no simulated partner breathes at: the orb follows nobody


def fast_backoff() -> Backoff:
    return Backoff(base_s=0.05, cap_s=0.5)


@dataclass
class Live:
    """A running simulated session and its bridge."""

    clock: RealClock
    session: Session
    world: Any
    bridge: MqttBridge
    session_task: asyncio.Task[None]

    def rel(self, state: SessionState) -> float:
        return state.t_s - self.session.t_origin_s


BridgeFactory = Callable[[Session], MqttBridge]


def bridge_to(url: BrokerURL, *, allow_control: bool = False,
              backoff: Callable[[], Backoff] = fast_backoff) -> BridgeFactory:
    return lambda session: MqttBridge(session, url, ROOM, allow_control=allow_control,
                                      backoff=backoff)


@contextlib.asynccontextmanager
async def live_session(make_bridge: BridgeFactory, *, speed: float = SPEED,
                       recorder: Recorder | None = None) -> AsyncIterator[Live]:
    """``coach demo``'s session (calm-anchor, real drivers) published by a bridge."""
    from coach.commands.record import record_session

    clock = RealClock(speed)
    session, world = build(clock, "calm-anchor", SEED)
    bridge = make_bridge(session)
    async with asyncio.TaskGroup() as tg:
        sources, _ = strap_sources(world, clock, SEED)
        run = (record_session(session, sources, recorder, SIM_S) if recorder is not None
               else session.run(sources, SIM_S))
        tasks = [tg.create_task(world.run(SIM_S), name="test.world"),
                 tg.create_task(run, name="test.session"),  # type: ignore[arg-type]
                 tg.create_task(bridge.run(), name="test.bridge")]
        try:
            yield Live(clock, session, world, bridge, tasks[1])  # type: ignore[arg-type]
        finally:
            for t in tasks:
                t.cancel()


async def watch_room(url: BrokerURL, got: list[aiomqtt.Message],
                     subscribed: asyncio.Event) -> None:
    """Record every message of the room (a subscriber on another machine)."""
    async with make_client(url, name="test-watch") as client:
        await client.subscribe(f"coach/v1/{ROOM}/#", qos=1)
        subscribed.set()
        async for m in client.messages:
            got.append(m)


def on(got: list[aiomqtt.Message], leaf: str) -> list[Any]:
    """Payloads (decoded) of messages on ``coach/v1/ROOM/<leaf>``."""
    return [json.loads(m.payload) for m in got if m.topic.value == f"coach/v1/{ROOM}/{leaf}"]


# ------------------------------------------------------------------ the stream


async def test_subscriber_gets_the_real_state_stream_statuses_and_markers(
        broker: BrokerHandle) -> None:
    url = broker.url()
    got: list[aiomqtt.Message] = []
    subscribed = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(20), live_session(bridge_to(url)) as live:
        watcher = asyncio.create_task(watch_room(url, got, subscribed), name="test.watch")
        try:
            await poll_until(subscribed.is_set, 5.0)
            await poll_until(lambda: len(on(got, "state")) >= 1, 5.0)
            t0, n0 = loop.time(), len(on(got, "state"))
            live.session.command(Command("marker", "repair", note="x"))
            t_marker = live.clock.now() - live.session.t_origin_s
            await poll_until(lambda: bool(on(got, "markers")), 5.0)
            await poll_until(lambda: loop.time() - t0 >= 2.0, 5.0)
            n_states, wall_s = len(on(got, "state")) - n0, loop.time() - t0
            await poll_until(lambda: all(on(got, f"status/{k}") for k in "AB"), 5.0)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    assert n_states / wall_s >= 2.0, (n_states, wall_s)

    states = on(got, "state")
    times = [s["t_s"] for s in states]
    assert times == sorted(times) and len(set(times)) == len(times)
    last = states[-1]
    assert set(last["partners"]) == {"A", "B"}
    for label, p in last["partners"].items():
        # the drivers' heart rate and the strap status reach the wire
        assert p["status"] == "ok" and 40 < p["hr_bpm"] < 120, (label, p)
    assert last["t_s"] == pytest.approx(live.rel(live.session.states.latest), abs=2 * SPEED)  # type: ignore[arg-type]
    assert "name" not in json.dumps(last)

    marker = on(got, "markers")[0]
    assert (marker["kind"], marker["note"]) == ("repair", "x")
    assert marker["t_s"] == pytest.approx(t_marker, abs=0.5)

    for label in "AB":
        status = on(got, f"status/{label}")[-1]
        assert status["status"] == "ok" and status["online"] is True and status["label"] == label
    assert on(got, "presence")[-1] == {"online": True, "control": False, "v": 1}
    assert live.bridge.stats.states_published >= n_states
    assert live.session.errors == 0


# ------------------------------------------------------------------ remote control


def demo_args(*argv: str) -> argparse.Namespace:
    """``coach demo`` options parsed by the real command-line parser."""
    from coach.cli import build_parser

    return build_parser().parse_args(["demo", "--headless", *argv])


@pytest.mark.parametrize("allowed", [False, True], ids=["not-allowed", "allowed"])
async def test_remote_control_changes_the_pacer_only_when_allowed(allowed: bool) -> None:
    """``coach demo --mqtt embedded [--allow-remote-control]``; a remote asks for a pace."""
    flags = ["--allow-remote-control"] if allowed else []
    args = demo_args("--mqtt", "embedded", "--room", ROOM, *flags)

    def make_bridge(session: Session) -> MqttBridge:
        bridge = bridge_from_args(session, args)
        assert bridge is not None
        return bridge

    async with asyncio.timeout(40), live_session(make_bridge) as live:
        bridge, session = live.bridge, live.session
        await poll_until(lambda: bridge.port is not None and bridge.health.connected, 5.0)
        assert bridge.port != 1883
        view = RemoteSession(BrokerURL("mqtt", "127.0.0.1", bridge.port), ROOM,
                             clock=live.clock, backoff=fast_backoff)
        async with asyncio.TaskGroup() as tg:
            view_task = tg.create_task(view.run(), name="test.view")
            # the orb starts once both partners' breathing rates are known
            await poll_until(lambda: _pacer(view) is not None and view.presence is not None,
                             20.0)
            assert view.control_allowed is allowed
            before = _pacer(view)
            assert before is not None and before.mode != "manual"
            view.command(Command("pace", PACE_BPM))
            seen = lambda: bridge.stats.control_accepted + bridge.stats.control_ignored  # noqa: E731
            await poll_until(lambda: seen() >= 1, 5.0)
            if allowed:
                await poll_until(lambda: _mode(view) == "manual", 5.0)
            else:
                # the command was heard and ignored: the next second of states still follows
                t = view.clock.now()
                await poll_until(lambda: view.states.latest.t_s > t + SPEED, 5.0)  # type: ignore[union-attr]
            view_task.cancel()
    pacer = session.states.latest.pacer  # type: ignore[union-attr]
    assert pacer is not None
    if allowed:
        assert session.coregulator.fixed_pace_bpm == PACE_BPM
        assert pacer.mode == "manual"
        # slewing toward the asked pace, never faster than the slew limit allows
        assert abs(pacer.rate_bpm - PACE_BPM) <= abs(before.rate_bpm - PACE_BPM) + 1e-6
        assert (bridge.stats.control_accepted, bridge.stats.control_ignored) == (1, 0)
    else:
        assert session.coregulator.fixed_pace_bpm is None
        assert pacer.mode != "manual" and _mode(view) != "manual"
        assert (bridge.stats.control_accepted, bridge.stats.control_ignored) == (0, 1)


def _pacer(view: RemoteSession) -> Any:
    latest = view.states.latest
    return None if latest is None else latest.pacer


def _mode(view: RemoteSession) -> str | None:
    pacer = _pacer(view)
    return None if pacer is None else pacer.mode


# ------------------------------------------------------------------ the broker dies


async def test_broker_killed_mid_session(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """The real session and its recorder run on; the view resumes within 5 s of the
    broker's return; the retained statuses show the gap. Production backoff (0.1-2 s).

    test_mqtt_outage covers the bridge's own memory bounds and wills with a stand-in
    session; this is the same outage seen from the real pipeline and a recording.
    """
    url = mosquitto.handle.url()
    path = tmp_path / "outage.coach"
    recorder = Recorder(path, labels=("A", "B"), settings={"source": "simulation"})
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(30), live_session(bridge_to(url, backoff=Backoff),
                                                 recorder=recorder) as live:
        session, bridge = live.session, live.bridge
        view = RemoteSession(url, ROOM, clock=live.clock)
        async with asyncio.TaskGroup() as tg:
            view_task = tg.create_task(view.run(), name="test.view")
            await poll_until(lambda: view.stats.states >= 3 and len(view.statuses) == 2, 5.0)

            mosquitto.kill()
            t_kill, rel_kill = loop.time(), live.clock.now() - session.t_origin_s
            await poll_until(lambda: not bridge.health.connected and not view.health.connected,
                             5.0)
            published, seen = session.states.published, view.stats.states
            t_gap = loop.time()
            await poll_until(lambda: loop.time() - t_gap >= 1.0, 2.0)  # the outage goes on
            assert session.states.published >= published + 5 * SPEED  # the session does too
            assert view.stats.states == seen

            mosquitto.start()
            t_back = loop.time()
            rel_back = live.clock.now() - session.t_origin_s
            await poll_until(lambda: view.stats.states > seen, 5.0)
            resumed_s = loop.time() - t_back
            await poll_until(lambda: all(s.get("reconnects", 0) >= 1
                                         for s in view.statuses.values()), 5.0)
            statuses = {k: dict(v) for k, v in view.statuses.items()}
            view_task.cancel()
        live.session_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await live.session_task  # the recorder is closed
    assert resumed_s < 5.0
    gap_s = t_back - t_kill
    assert set(statuses) == {"A", "B"}
    for label, status in statuses.items():
        assert status["online"] is True and status["status"] == "ok", label
        assert gap_s - 0.5 <= status["outage_s"] <= gap_s + 5.0, (status, gap_s)
    assert view.presence is not None and view.presence["online"] is True
    assert session.states.latest is not None
    assert all(p.status == "ok" for p in session.states.latest.partners.values())

    # the recording has every state and both straps' heart beats right through the gap
    with RecordingReader(path) as reader:
        origin = reader.t_origin_s
        times = [s["t_s"] - origin for s in reader.states()]
        steps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
        assert set(steps) == {0.1}, sorted(set(steps))
        assert times[0] < rel_kill and times[-1] > rel_back
        for label in ("A", "B"):
            beats = [e.t_s - origin for e in reader.entries(("hr",), label)]
            inside = [t for t in beats if rel_kill < t < rel_back]
            assert len(inside) >= 0.5 * (rel_back - rel_kill), (label, len(inside))


# ------------------------------------------------------------------ markers on a remote view


def test_a_remote_view_shows_each_marker_once_even_if_its_state_was_dropped() -> None:
    """The bridge sends only the newest state, so a marker's state may never arrive:
    the view takes markers from their own topic, once, whichever comes first."""
    from coach.mqtt import codec
    from coach.types import PacerState

    view = RemoteSession(BrokerURL("mqtt", "127.0.0.1", 1883), ROOM)
    base, shown = 1000.0, []

    def state(t_s: float, *markers: dict[str, Any]) -> bytes:
        s = SessionState(base + t_s, {}, None, PacerState(base, 0.0, 6.0))
        obj = s.to_json(base)
        if markers:
            obj["markers"] = list(markers)
        return codec.dumps(obj)

    def feed(leaf: str, payload: bytes) -> None:
        view.on_message(f"coach/v1/{ROOM}/{leaf}", payload)
        latest = view.states.latest
        if leaf == "state" and latest is not None:
            shown.extend((round(m.t_s - view.t_origin_s, 3), m.kind) for m in latest.markers)

    async def go() -> None:  # the view reads its clock from the running loop
        repair = {"t_s": 1.05, "kind": "repair", "note": "x"}
        touch = {"t_s": 2.05, "kind": "touch", "note": ""}
        feed("state", state(1.0))
        feed("markers", codec.dumps(repair))  # its state (1.1) is dropped by the bridge
        feed("state", state(1.2))
        feed("state", state(2.1, touch))  # the state first, then the marker topic
        feed("markers", codec.dumps(touch))
        feed("state", state(2.2))

    asyncio.run(go())
    assert shown == [(1.05, "repair"), (2.05, "touch")]
    assert view.markers.published == 2
