"""Broker outages and crashes: reconnection, bounded memory, last wills."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

from mqtt_fixtures import PASSWORD, USER, FakeSession, Mosquitto, poll_until

from coach.mqtt import MqttBridge, RemoteSession
from coach.mqtt.link import Backoff, make_client

pytest_plugins = ["conftest_mqtt"]

ROOM = "room-9"


def backoff() -> Backoff:
    return Backoff(base_s=0.1, cap_s=1.0)


async def test_broker_killed_and_restarted_on_the_same_port(mosquitto: Mosquitto) -> None:
    session = FakeSession()
    url = mosquitto.handle.url()
    bridge = MqttBridge(session, url, ROOM, backoff=backoff)
    view = RemoteSession(url, ROOM, backoff=backoff)
    loop = asyncio.get_running_loop()
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(c) for c in (session.pump(), bridge.run(), view.run())]
        await poll_until(lambda: view.stats.states >= 3 and len(view.statuses) == 2, 5.0)
        subs_before = len(session.states._subs)

        mosquitto.kill()
        t_kill = loop.time()
        await poll_until(lambda: not bridge.health.connected and not view.health.connected, 5.0)
        published = session.states.published
        await asyncio.sleep(1.5)  # the outage: the session goes on, nothing piles up
        assert session.states.published > published + 5
        assert len(session.states._subs) <= subs_before
        assert all(sub._queue.qsize() <= 1 for sub in session.states._subs)
        seen = view.stats.states

        mosquitto.start()
        t_back = loop.time()
        await poll_until(lambda: view.stats.states > seen, 5.0)
        resumed_s = loop.time() - t_back
        await poll_until(lambda: all(s.get("reconnects", 0) >= 1 for s in view.statuses.values()),
                         5.0)
        for t in tasks:
            t.cancel()
    assert resumed_s < 5.0
    gap_s = t_back - t_kill
    for label, status in view.statuses.items():
        assert status["online"] is True and status["status"] == "ok", label
        assert gap_s - 0.5 <= status["outage_s"] <= gap_s + 5.0, (status, gap_s)
    assert bridge.health.reconnects >= 1


CRASHING_SESSION = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, sys.argv[2])
    from mqtt_fixtures import FakeSession
    from coach.mqtt import MqttBridge, parse_broker_url

    async def main():
        s = FakeSession()
        b = MqttBridge(s, parse_broker_url(sys.argv[1]), "room-9")
        async with asyncio.TaskGroup() as tg:
            tg.create_task(s.pump()); tg.create_task(b.run())
            while b.stats.states_published < 3 or len(b.label_health) < 2 or not all(
                    h.connected for h in b.label_health.values()):
                await asyncio.sleep(0.02)
            print("up", flush=True)
            await asyncio.sleep(60)
    asyncio.run(main())
""")


async def test_a_crashed_session_shows_offline(mosquitto: Mosquitto) -> None:
    env = {**os.environ, "COACH_MQTT_PASSWORD": PASSWORD}
    here = os.path.dirname(__file__)
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_SESSION, f"mqtt://{USER}@127.0.0.1:{mosquitto.port}",
         here], stdout=subprocess.PIPE, env=env, cwd=os.path.dirname(here))
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 10)  # type: ignore[union-attr]
        assert line.strip() == b"up"
    finally:
        proc.kill()  # SIGKILL: no goodbye, the broker must fire the wills
        proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
    got: dict[str, dict[str, object]] = {}
    async with asyncio.timeout(10), make_client(mosquitto.handle.url(), name="t") as c:
        await c.subscribe(f"coach/v1/{ROOM}/#")
        async for m in c.messages:
            body = json.loads(m.payload)
            if m.retain:
                got[m.topic.value] = body
            if len(got) == 3 and all(b["online"] is False for b in got.values()):
                break
    assert set(got) == {f"coach/v1/{ROOM}/presence", f"coach/v1/{ROOM}/status/A",
                        f"coach/v1/{ROOM}/status/B"}
    assert got[f"coach/v1/{ROOM}/status/A"]["status"] == "offline"
