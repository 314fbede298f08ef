"""The bridge and the remote view against real brokers (Mosquitto and amqtt)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator, Callable

import aiomqtt
import pytest
from mqtt_fixtures import PASSWORD, USER, BrokerHandle, FakeSession, poll_until

from coach.mqtt import BrokerAuthError, MqttBridge, RemoteSession
from coach.mqtt.link import Backoff
from coach.types import Command

pytest_plugins = ["conftest_mqtt"]

ROOM = "room-7"


def fast_backoff() -> Backoff:
    return Backoff(base_s=0.05, cap_s=0.5)


@contextlib.asynccontextmanager
async def running(session: FakeSession, *workers: object) -> AsyncIterator[None]:
    """Run the session's pump and the given bridges/views; cancel them all on exit."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(session.pump(), name="test.pump")]
        tasks += [tg.create_task(w.run(), name=f"test.{type(w).__name__}")  # type: ignore[attr-defined]
                  for w in workers]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()


async def collect(url_handle: BrokerHandle, topic: str, n: int, timeout_s: float = 5.0,
                  *, tls: bool = False, then: Callable[[], None] | None = None,
                  ) -> list[aiomqtt.Message]:
    """The first ``n`` messages on ``topic`` (a fresh subscriber), bounded in time."""
    url = url_handle.url(tls=tls)
    from coach.mqtt.link import make_client

    out: list[aiomqtt.Message] = []
    async with asyncio.timeout(timeout_s), make_client(url, name="test-sub") as client:
        await client.subscribe(topic, qos=1)
        if then is not None:
            then()
        async for m in client.messages:
            if not m.topic.matches(topic):
                continue  # amqtt 0.12.1 sometimes leaks another retained topic: see docs/mqtt.md
            out.append(m)
            if len(out) >= n:
                break
    return out


async def test_subscriber_gets_states_statuses_and_markers(broker: BrokerHandle) -> None:
    session = FakeSession()
    bridge = MqttBridge(session, broker.url(), ROOM, backoff=fast_backoff)
    async with running(session, bridge):
        await poll_until(lambda: bridge.stats.states_published >= 3, 5.0)
        got = await collect(broker, f"coach/v1/{ROOM}/#", 12)
        markers = await collect(broker, f"coach/v1/{ROOM}/markers", 1, then=lambda: session.command(
            Command("marker", "rupture", "raised voices")))
    by_topic: dict[str, list[aiomqtt.Message]] = {}
    for m in got:
        by_topic.setdefault(m.topic.value, []).append(m)
    assert json.loads(by_topic[f"coach/v1/{ROOM}/presence"][0].payload)["online"] is True
    for label in ("A", "B"):
        status = by_topic[f"coach/v1/{ROOM}/status/{label}"][0]
        assert status.retain, "a late subscriber must get the strap status at once"
        body = json.loads(status.payload)
        assert body["status"] == "ok" and body["online"] is True and body["label"] == label
    states = by_topic[f"coach/v1/{ROOM}/state"]
    assert not any(m.retain for m in states)
    state = json.loads(states[-1].payload)
    assert set(state) >= {"t_s", "partners", "anchor", "pacer"}
    assert set(state["partners"]) == {"A", "B"} and state["pacer"]["rate_bpm"] == 6.5
    marker = json.loads(markers[0].payload)
    assert marker["kind"] == "rupture" and marker["note"] == "raised voices"


async def test_retained_status_follows_the_strap_status_reason(broker: BrokerHandle) -> None:
    """A new reason (the next attempt) re-publishes the retained status, status unchanged."""
    session = FakeSession()
    session.status, session.status_reason = "lost", "attempt 2: le-connection-abort-by-local"
    bridge = MqttBridge(session, broker.url(), ROOM, backoff=fast_backoff)
    async with running(session, bridge):
        await poll_until(lambda: bridge.stats.states_published >= 3, 5.0)
        session.status_reason = "attempt 3: le-connection-abort-by-local"
        await poll_until(lambda: bridge.stats.states_published >= 6, 5.0)
        got = await collect(broker, f"coach/v1/{ROOM}/status/A", 1)
    body = json.loads(got[0].payload)
    assert (body["status"], body["status_reason"]) == (
        "lost", "attempt 3: le-connection-abort-by-local")


async def test_state_rate_is_at_least_two_per_second(broker: BrokerHandle) -> None:
    session = FakeSession()
    bridge = MqttBridge(session, broker.url(), ROOM, backoff=fast_backoff)
    async with running(session, bridge):
        await poll_until(lambda: bridge.stats.states_published >= 1, 5.0)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        got = await collect(broker, f"coach/v1/{ROOM}/state", 6, timeout_s=3.0)
        elapsed = loop.time() - t0
    assert len(got) / elapsed >= 2.0


async def test_tls_with_a_ca_file(broker: BrokerHandle) -> None:
    session = FakeSession()
    bridge = MqttBridge(session, broker.url(tls=True), ROOM, backoff=fast_backoff)
    view = RemoteSession(broker.url(tls=True), ROOM, backoff=fast_backoff)
    async with running(session, bridge, view):
        await poll_until(lambda: view.states.latest is not None, 5.0)
    assert view.url.tls and view.states.latest is not None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # amqtt leaks
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the socket of a failed TLS handshake
async def test_tls_without_the_ca_is_one_clear_error(broker: BrokerHandle) -> None:
    url = broker.url(tls=True)
    from dataclasses import replace

    bridge = MqttBridge(FakeSession(), replace(url, ca_file=None), ROOM, backoff=fast_backoff)
    with pytest.raises(BrokerAuthError) as err:
        async with asyncio.timeout(5):
            await bridge.run()
    assert "certificate" in str(err.value) and "\n" not in str(err.value)
    gc.collect()  # paho 2.2 leaks the socket of a failed handshake: collect it here


async def test_wrong_password_is_one_clear_error(broker: BrokerHandle,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    bridge = MqttBridge(FakeSession(), broker.url(password="wrong-" + PASSWORD), ROOM,
                        backoff=fast_backoff)
    with pytest.raises(BrokerAuthError) as err:
        async with asyncio.timeout(5):
            await bridge.run()
    msg = str(err.value)
    assert "\n" not in msg and "wrong user name or password" in msg and USER in msg
    assert "wrong-" + PASSWORD not in msg + caplog.text


async def test_remote_session_rebuilds_the_state(broker: BrokerHandle) -> None:
    session = FakeSession()
    bridge = MqttBridge(session, broker.url(), ROOM, backoff=fast_backoff)
    view = RemoteSession(broker.url(), ROOM, backoff=fast_backoff)
    async with running(session, bridge, view):
        await poll_until(lambda: view.stats.states >= 3 and len(view.statuses) == 2, 5.0)
        local, remote = session.states.latest, view.states.latest
        assert local is not None and remote is not None
        now = view.clock.now()
        # the orb animates on the view's clock as on the session's: same phase within latency
        d = abs(local.pacer.phase_at(session.clock.now()) - remote.pacer.phase_at(now))  # type: ignore[union-attr]
        assert min(d, 6.2832 - d) < 0.2 + 2 * 3.1416 * 6.5 / 60 * 0.15
    assert view.presence == {"online": True, "control": False, "v": 1}
    assert not view.control_allowed
    assert set(remote.partners) == {"A", "B"} and remote.partners["A"].battery_pct == 90
    assert remote.t_s - view.t_origin_s == pytest.approx(local.t_s - session.t_origin_s, abs=1.0)


@pytest.mark.parametrize("allowed", [False, True])
async def test_remote_control_only_when_allowed(broker: BrokerHandle, allowed: bool) -> None:
    session = FakeSession()
    bridge = MqttBridge(session, broker.url(), ROOM, allow_control=allowed, backoff=fast_backoff)
    view = RemoteSession(broker.url(), ROOM, backoff=fast_backoff)
    async with running(session, bridge, view):
        await poll_until(lambda: view.presence is not None and bridge.health.connected, 5.0)
        assert view.control_allowed is allowed
        view.command(Command("pace", 6.0))
        async with aiomqtt.Client("127.0.0.1", broker.port, username=USER,
                                  password=PASSWORD) as raw:  # a malformed command
            await raw.publish(f"coach/v1/{ROOM}/control", b'{"kind":"pace","value":"fast"}', qos=1)
        s = bridge.stats
        await poll_until(lambda: s.control_accepted + s.control_ignored + s.control_rejected >= 2,
                         5.0)
    if allowed:
        assert session.commands == [Command("pace", 6.0)]
        assert (s.control_accepted, s.control_rejected, s.control_ignored) == (1, 1, 0)
    else:
        assert session.commands == []  # the valid one refused, the malformed one dropped
        assert (s.control_accepted, s.control_rejected, s.control_ignored) == (0, 1, 1)


async def test_clean_stop_leaves_offline(broker: BrokerHandle) -> None:
    session = FakeSession()
    bridge = MqttBridge(session, broker.url(), ROOM, backoff=fast_backoff)
    async with running(session, bridge):
        await poll_until(lambda: len(bridge.label_health) == 2
                         and all(h.connected for h in bridge.label_health.values()), 5.0)
    got = await collect(broker, f"coach/v1/{ROOM}/+/#", 2)  # status/A, status/B
    got += await collect(broker, f"coach/v1/{ROOM}/presence", 1)
    bodies = {m.topic.value: json.loads(m.payload) for m in got}
    assert all(b["online"] is False for b in bodies.values()), bodies


async def test_embedded_broker_in_the_session() -> None:
    from coach.mqtt import parse_broker_url

    session = FakeSession()
    bridge = MqttBridge(session, parse_broker_url("embedded"), ROOM, backoff=fast_backoff)
    async with running(session, bridge):
        await poll_until(lambda: bridge.stats.states_published >= 2, 5.0)
        assert bridge.port and bridge.port != 1883
        async with asyncio.timeout(5), aiomqtt.Client("127.0.0.1", bridge.port) as c:
            await c.subscribe(f"coach/v1/{ROOM}/state")
            message = await anext(aiter(c.messages))
    assert json.loads(message.payload)["partners"]["A"]["status"] == "ok"
