"""A room under a flood of commands applies at most 5 a second and keeps its recording small.

A real room (``coach demo``'s session, real drivers over simulated straps, recorded)
publishes with ``--allow-remote-control`` through a real Mosquitto on loopback; another
client publishes 50,000 markers to its control topic as fast as it can. The recording is
compared with the same session's recording without the flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from mqtt_fixtures import PASSWORD, USER, Mosquitto, poll_until

from coach.clock import RealClock
from coach.commands.demo import build, strap_sources
from coach.commands.record import maybe_recording
from coach.mqtt import MqttBridge, RemoteSession
from coach.mqtt.link import Backoff
from coach.recording import RecordingReader
from coach.session import COMMANDS_PER_S
from coach.types import Receipt

pytest_plugins = ["conftest_mqtt"]

ROOM = "room-5"
SEED = 4
SPEED = 2.0  # session seconds per wall second
SESSION_S = 16.0  # session seconds each room runs
FLOOD = 50_000


def fast_backoff() -> Backoff:
    return Backoff(base_s=0.05, cap_s=0.5)


@dataclass
class RoomRun:
    path: Path
    commands_dropped: int = 0
    receipts: list[Receipt] = field(default_factory=list)
    flood_sent: int = 0
    flood_wall_s: float = 0.0


def flood(port: int, n: int) -> tuple[int, float]:
    """Publish ``n`` markers (QoS 0) to the room's control topic; (sent, wall seconds)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-flood")
    client.username_pw_set(USER, PASSWORD)
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0 = time.monotonic()
    try:
        topic = f"coach/v1/{ROOM}/control"
        info = None
        for k in range(n):
            body = {"kind": "marker", "value": "rupture", "note": "", "id": f"flood-{k}"}
            info = client.publish(topic, json.dumps(body), qos=0)
        if info is not None:
            info.wait_for_publish(timeout=20.0)
        return n, time.monotonic() - t0
    finally:
        client.loop_stop()
        client.disconnect()


async def run_room(mosquitto: Mosquitto, path: Path, *, flooded: bool) -> RoomRun:
    url = mosquitto.handle.url()
    clock = RealClock(SPEED)
    session, world = build(clock, "calm-anchor", SEED)
    bridge = MqttBridge(session, url, ROOM, allow_control=True, backoff=fast_backoff)
    view = RemoteSession(url, ROOM, backoff=fast_backoff)
    run = RoomRun(path)
    sub = view.states.subscribe(maxsize=100_000)

    async def flood_when_ready() -> None:
        await poll_until(lambda: view.control_allowed and view.stats.states > 0, 10.0)
        run.flood_sent, run.flood_wall_s = await asyncio.to_thread(flood, mosquitto.port, FLOOD)

    settings = {"source": "test", "seed": SEED}
    async with asyncio.TaskGroup() as tg:
        sources, _ = strap_sources(world, clock, SEED)
        helpers = [tg.create_task(world.run(SESSION_S + 10), name="test.world"),
                   tg.create_task(bridge.run(), name="test.bridge"),
                   tg.create_task(view.run(), name="test.view")]
        flooder = tg.create_task(flood_when_ready(), name="test.flood") if flooded else None
        async with maybe_recording(session, path, settings):
            await session.run(sources, SESSION_S)
        if flooder is not None:
            await asyncio.wait({flooder}, timeout=5.0)  # it finished long before
        await asyncio.sleep(0.3)  # the last states reach the view
        for t in helpers:
            t.cancel()
    run.commands_dropped = session.commands_dropped
    while (state := sub.get_nowait()) is not None:
        run.receipts.extend(state.receipts)
    return run


def recorded_markers(path: Path) -> list[float]:
    with RecordingReader(path) as reader:
        return [e.t_s - reader.t_origin_s for e in reader.entries(("marker",))]


async def test_a_flood_of_markers_is_cut_to_five_a_second(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # the flood runs in a thread; a garbage collection started there could destroy Qt
    # objects left by earlier tests off the GUI thread: collect now, and not meanwhile
    gc.collect()
    gc.disable()
    try:
        async with asyncio.timeout(90):
            normal = await run_room(mosquitto, tmp_path / "normal.coach", flooded=False)
            flooded = await run_room(mosquitto, tmp_path / "flooded.coach", flooded=True)
    finally:
        gc.enable()
        gc.collect()
    assert flooded.flood_sent == FLOOD and flooded.flood_wall_s < 15.0
    marks = recorded_markers(flooded.path)
    assert recorded_markers(normal.path) == []
    # some got through, never more than 5 in any second of session
    assert 1 <= len(marks) <= COMMANDS_PER_S * SESSION_S + COMMANDS_PER_S
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(marks, marks[COMMANDS_PER_S:], strict=False))
    # the rest were dropped, counted, and answered by summed refusals
    assert flooded.commands_dropped > 10 * len(marks)
    refused = [r for r in flooded.receipts if r.outcome == "refused"]
    assert refused and all(r.reason == "rate limited" for r in refused)
    assert max(r.count for r in refused) > 1
    assert sum(r.count for r in refused) <= flooded.commands_dropped
    size = {r.path.name: r.path.stat().st_size for r in (normal, flooded)}
    with contextlib.suppress(FileNotFoundError):  # a WAL left beside it counts too
        size["flooded.coach"] += Path(f"{flooded.path}-wal").stat().st_size
    assert size["flooded.coach"] <= 2 * size["normal.coach"], size
    print(f"flood: {FLOOD} markers in {flooded.flood_wall_s:.1f} s; recorded {len(marks)}; "
          f"dropped by the session {flooded.commands_dropped}; sizes {size}")
    print("applied:", sum(1 for r in flooded.receipts if r.outcome == "applied"))
