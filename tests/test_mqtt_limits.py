"""Size caps: a 150 MB publish is refused by the broker before it is read into memory.

The publisher is a raw socket that announces one 150 MB PUBLISH on room-1's control topic
and streams zeros 64 kB at a time until the broker hangs up, so the test itself never
holds the payload. Memory is read from /proc (VmRSS sampled during the send; Mosquitto's
VmHWM, its peak). Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
import time
from pathlib import Path

from mqtt_fixtures import (
    PASSWORD,
    USER,
    BrokerHandle,
    FakeSession,
    Mosquitto,
    clinic_password,
    poll_until,
)

from coach.mqtt import MqttBridge
from coach.mqtt.link import Backoff, make_client
from coach.types import Command

pytest_plugins = ["conftest_mqtt"]

BIG = 150 * 1024 * 1024
CHUNK = 64 * 1024


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def send_huge_publish(port: int, user: str, password: str, topic: str,
                      size: int = BIG) -> int:
    """CONNECT, then a PUBLISH announcing BIG bytes; returns the bytes sent before the
    broker closed the connection (bounded: the broker must hang up)."""
    body = _utf8("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30)
    body += _utf8("test-huge") + _utf8(user) + _utf8(password)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x10" + _varint(len(body)) + body)
        connack = s.recv(4)
        assert connack[:1] == b"\x20" and connack[3:4] == b"\x00", connack
        head = _utf8(topic)
        s.sendall(b"\x30" + _varint(len(head) + size) + head)
        zeros = bytes(CHUNK)
        try:
            while sent < size:
                s.sendall(zeros)
                sent += CHUNK
        except OSError:  # reset or broken pipe: the broker hung up, as it should
            pass
    return sent


def rss_kb(pid: int | str = "self", field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


class PeakRss:
    """The peak VmRSS of this process while the block runs (sampled every 5 ms)."""

    def __enter__(self) -> PeakRss:
        self.before = self.peak = rss_kb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_kb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def huge_publish_then_a_command(broker: BrokerHandle) -> tuple[int, list[Command], int]:
    """A room with remote control on; ana sends 150 MB, then one ordinary command."""
    session = FakeSession()
    bridge = MqttBridge(session, broker.url(user="room-1", password=clinic_password("room-1")),
                        "room-1", allow_control=True, backoff=lambda: Backoff(0.05, 0.5))
    async with asyncio.timeout(60), asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(session.pump(), name="test.pump"),
                 tg.create_task(bridge.run(), name="test.bridge")]
        await poll_until(lambda: bridge.stats.states_published >= 3, 10.0)
        t0 = time.monotonic()
        sent = await asyncio.to_thread(send_huge_publish, broker.port, "ana",
                                       clinic_password("ana"), "coach/v1/room-1/control")
        assert time.monotonic() - t0 < 30
        async with make_client(broker.url(user="ana", password=clinic_password("ana"))) as ana:
            await ana.publish("coach/v1/room-1/control", b'{"kind":"pause"}', qos=1)
        await poll_until(lambda: len(session.commands) >= 1, 10.0)
        for t in tasks:
            t.cancel()
    return sent, session.commands, bridge.stats.control_rejected


async def test_embedded_broker_refuses_a_150_mb_publish_unread(clinic_amqtt: BrokerHandle) -> None:
    """Broker and room in this process: its memory stays within 2x (in fact a few MB)."""
    with PeakRss() as mem:
        sent, commands, rejected = await huge_publish_then_a_command(clinic_amqtt)
    print(f"\nembedded: hung up after {sent / 1e6:.1f} MB sent; this process (broker + room) "
          f"{mem.before / 1e3:.1f} MB, peak {mem.peak / 1e3:.1f} MB")
    assert sent < BIG // 4  # the broker hung up early
    assert commands == [Command("pause")] and rejected == 0  # the room got only the command
    assert mem.peak - mem.before < 50_000, f"grew {mem.peak - mem.before} kB"
    assert mem.peak < 2 * mem.before


async def test_mosquitto_refuses_a_150_mb_publish_unread(clinic_mosquitto: Mosquitto) -> None:
    assert clinic_mosquitto.proc is not None
    pid = clinic_mosquitto.proc.pid
    normal_kb = rss_kb(pid)
    with PeakRss() as room:
        sent, commands, rejected = await huge_publish_then_a_command(clinic_mosquitto.handle)
    print(f"\nmosquitto: hung up after {sent / 1e6:.1f} MB sent; its memory "
          f"{normal_kb / 1e3:.1f} MB, peak {rss_kb(pid, 'VmHWM') / 1e3:.1f} MB; the room "
          f"{room.before / 1e3:.1f} MB, peak {room.peak / 1e3:.1f} MB")
    assert sent < BIG // 4
    assert commands == [Command("pause")] and rejected == 0
    assert rss_kb(pid, "VmHWM") < 2 * normal_kb, (normal_kb, rss_kb(pid, "VmHWM"))
    assert room.peak < 2 * room.before
    assert os.path.exists(f"/proc/{pid}")  # still running


async def test_the_room_hangs_up_on_a_huge_packet_from_an_uncapped_broker(
        mosquitto: Mosquitto) -> None:
    """A broker without a cap (the test Mosquitto's plain setup) forwards 32 MB: the room's
    client hangs up before reading it, reconnects, and takes the next command."""
    session = FakeSession()
    url = mosquitto.handle.url()
    bridge = MqttBridge(session, url, "room-1", allow_control=True,
                        backoff=lambda: Backoff(0.05, 0.5))
    with PeakRss() as room:
        async with asyncio.timeout(60), asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(session.pump(), name="test.pump"),
                     tg.create_task(bridge.run(), name="test.bridge")]
            await poll_until(lambda: bridge.stats.states_published >= 3, 10.0)
            size = 32 * 1024 * 1024
            sent = await asyncio.to_thread(send_huge_publish, mosquitto.port, USER, PASSWORD,
                                           "coach/v1/room-1/control", size)
            assert sent >= size  # this broker took it all
            await poll_until(lambda: bridge.health.connects >= 2, 10.0)  # hung up, back
            # Connected is not yet subscribed: send until the room has subscribed again.
            async with make_client(url) as c:
                for _ in range(20):
                    await c.publish("coach/v1/room-1/control", b'{"kind":"resume"}', qos=1)
                    with contextlib.suppress(TimeoutError):
                        await poll_until(lambda: len(session.commands) >= 1, 0.5)
                        break
            for t in tasks:
                t.cancel()
    print(f"\nroom behind an uncapped broker: {room.before / 1e3:.1f} MB, "
          f"peak {room.peak / 1e3:.1f} MB")
    assert session.commands and set(session.commands) == {Command("resume")}
    assert bridge.stats.control_rejected == 0
    assert room.peak - room.before < 16_000, f"grew {room.peak - room.before} kB"
