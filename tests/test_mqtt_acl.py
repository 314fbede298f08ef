"""A clinic broker where each login touches only what is its own (issue 18).

Every test runs against Debian's Mosquitto configured from ``coach users mosquitto``'s
files and against the embedded broker serving the same user list. Denied publishes are
dropped silently by both brokers, so each test sends the denied message first and then
an allowed "sentinel" on the same path: once the sentinel has arrived, the denied one
would have too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError
from mqtt_fixtures import BrokerHandle, FakeSession, clinic_password, poll_until, sample_state

from coach.mqtt import MqttBridge, RemoteSession
from coach.mqtt.link import Backoff, make_client

pytest_plugins = ["conftest_mqtt"]


def login(broker: BrokerHandle, name: str | None, password: str | None = None) -> aiomqtt.Client:
    pw = password if password is not None else (clinic_password(name) if name else None)
    return make_client(broker.url(user=name, password=pw), name=f"test-{name}")


@asynccontextmanager
async def listening(client: aiomqtt.Client, topic: str) -> AsyncIterator[list[aiomqtt.Message]]:
    """Subscribe ``client`` to ``topic`` and collect what arrives, in the background."""
    got: list[aiomqtt.Message] = []
    await client.subscribe(topic, qos=1)

    async def collect() -> None:
        async for m in client.messages:
            got.append(m)

    task = asyncio.create_task(collect(), name="test.collect")
    try:
        yield got
    finally:
        task.cancel()


def topics(got: list[aiomqtt.Message]) -> list[str]:
    return [m.topic.value for m in got]


async def test_a_room_cannot_publish_into_another_room(clinic_broker: BrokerHandle) -> None:
    async with (asyncio.timeout(20), login(clinic_broker, "ana") as ana,
                login(clinic_broker, "room-1") as room1, listening(ana, "coach/v1/#") as got):
        await room1.publish("coach/v1/room-2/state", b'{"forged":1}', qos=1)
        await room1.publish("coach/v1/room-2/presence", b'{"online":false}', qos=1, retain=True)
        await room1.publish("coach/v1/room-1/control", b'{"kind":"pause"}', qos=1)
        await room1.publish("coach/v1/room-1/state", b'{"own":1}', qos=1)  # sentinel
        await poll_until(lambda: "coach/v1/room-1/state" in topics(got), 5.0)
    assert topics(got) == ["coach/v1/room-1/state"]


async def test_a_therapist_without_control_cannot_steer(clinic_broker: BrokerHandle) -> None:
    async with (asyncio.timeout(20), login(clinic_broker, "room-1") as room1,
                login(clinic_broker, "tom") as tom, login(clinic_broker, "ana") as ana,
                listening(room1, "coach/v1/room-1/#") as got):
        await tom.publish("coach/v1/room-1/control", b'{"kind":"pause"}', qos=1)
        await tom.publish("coach/v1/room-1/state", b'{"forged":1}', qos=1)
        await ana.publish("coach/v1/room-1/control", b'{"kind":"resume"}', qos=1)
        await poll_until(lambda: len(got) >= 1, 5.0)
        await ana.publish("coach/v1/room-2/control", b'{"kind":"resume"}', qos=1)
        await ana.publish("coach/v1/room-1/control", b'{"kind":"marker"}', qos=1)
        await poll_until(lambda: len(got) >= 2, 5.0)
    assert [json.loads(m.payload)["kind"] for m in got] == ["resume", "marker"]


@pytest.mark.parametrize("name, password", [(None, None), ("mallory", "guess"),
                                            ("ana", "wrong-password")])
async def test_anonymous_unknown_or_wrong_password_is_refused(
        clinic_broker: BrokerHandle, name: str | None, password: str | None) -> None:
    async with asyncio.timeout(10):
        with pytest.raises(MqttConnectError):
            async with login(clinic_broker, name, password):
                pass


async def test_a_login_reads_nothing_beyond_its_rights(clinic_broker: BrokerHandle) -> None:
    """room-2 (a known login) subscribed to everything gets only its own control, even of
    retained messages already on the broker and watched by someone else."""
    async with asyncio.timeout(20), login(clinic_broker, "room-1") as room1:
        await room1.publish("coach/v1/room-1/presence", b'{"online":true}', qos=1, retain=True)
        await room1.publish("coach/v1/room-1/status/A", b'{"status":"ok"}', qos=1, retain=True)
        async with login(clinic_broker, "tom") as tom, listening(tom, "coach/v1/+/presence") as t:
            await poll_until(lambda: len(t) >= 1, 5.0)  # the retained presence, readable by tom
            async with (login(clinic_broker, "room-2") as room2,
                        listening(room2, "#") as got, login(clinic_broker, "ana") as ana):
                await room1.publish("coach/v1/room-1/state", b"{}", qos=1)
                await ana.publish("coach/v1/room-1/control", b'{"kind":"pause"}', qos=1)
                await ana.publish("coach/v1/room-2/control", b'{"kind":"pause"}', qos=1)
                await poll_until(lambda: len(got) >= 1, 5.0)
    assert topics(t) == ["coach/v1/room-1/presence"]
    assert topics(got) == ["coach/v1/room-2/control"]


async def test_a_forged_state_never_reaches_the_remote_view(clinic_broker: BrokerHandle) -> None:
    """The issue's attack: 20 forged states (HR 199) on room-1's state topic from other
    logins while room-1's real session runs; the therapist's view shows none of them."""
    session = FakeSession()
    bridge = MqttBridge(session, clinic_broker.url(user="room-1",
                                                   password=clinic_password("room-1")),
                        "room-1", backoff=lambda: Backoff(0.05, 0.5))
    view = RemoteSession(clinic_broker.url(user="tom", password=clinic_password("tom")),
                         "room-1", backoff=lambda: Backoff(0.05, 0.5))
    seen: list[float] = []
    real = sample_state(5.0)
    forged = replace(real, partners={k: replace(p, hr_bpm=199.0) for k, p in real.partners.items()})
    payload = json.dumps(forged.to_json()).encode()

    async def watch() -> None:
        sub = view.states.subscribe(maxsize=1000)
        async for s in sub:
            seen.extend(p.hr_bpm for p in s.partners.values() if p.hr_bpm is not None)

    async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(session.pump(), name="test.pump"),
                 tg.create_task(bridge.run(), name="test.bridge"),
                 tg.create_task(view.run(), name="test.view"),
                 tg.create_task(watch(), name="test.watch")]
        await poll_until(lambda: view.stats.states >= 5, 10.0)
        for forger in ("room-2", "ana", "tom"):
            async with login(clinic_broker, forger) as c:
                for _ in range(7 if forger != "tom" else 6):
                    await c.publish("coach/v1/room-1/state", payload, qos=1)
        before = view.stats.states
        await poll_until(lambda: view.stats.states >= before + 10, 10.0)
        for t in tasks:
            t.cancel()
    assert seen and all(hr in (70.0, 71.0) for hr in seen), "a forged state reached the view"
    assert view.stats.resyncs == 0  # the view's clock never jumped


def _connect_with_will(port: int, user: str, will_topic: str) -> int:
    """A raw MQTT 3.1.1 CONNECT as ``user`` with a retained last will on ``will_topic``;
    on acceptance the socket is dropped without DISCONNECT (so a broker fires the will).
    Returns the CONNACK code."""
    def utf8(b: bytes) -> bytes:
        return struct.pack("!H", len(b)) + b

    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02  # user, password, will retain/QoS 1/flag
    body = utf8(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 30) + utf8(b"test-will")
    body += utf8(will_topic.encode()) + utf8(b'{"online":false,"status":"offline"}')
    body += utf8(user.encode()) + utf8(clinic_password(user).encode())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(bytes([0x10, len(body)]) + body)
        connack = s.recv(4)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    return connack[3] if len(connack) == 4 else -1


async def test_a_last_will_cannot_speak_for_another_room(clinic_broker: BrokerHandle) -> None:
    """room-2 leaving a will on room-1's presence: refused at CONNECT, or never delivered."""
    async with (asyncio.timeout(20), login(clinic_broker, "tom") as tom,
                listening(tom, "coach/v1/room-1/#") as got):
        code = await asyncio.to_thread(_connect_with_will, clinic_broker.port, "room-2",
                                       "coach/v1/room-1/presence")
        await asyncio.sleep(0.3)  # a will fires at once when the socket drops
        async with login(clinic_broker, "room-1") as room1:
            await room1.publish("coach/v1/room-1/presence", b'{"online":true}', qos=1)
            await poll_until(lambda: len(got) >= 1, 5.0)
    assert code in (0, 5, 135)
    assert [json.loads(m.payload) for m in got] == [{"online": True}]
