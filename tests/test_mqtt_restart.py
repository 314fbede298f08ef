"""Session ids: a remote view follows a restarted room at once, and drops (and counts)
states that run back in time within one session. Against Mosquitto and amqtt."""

from __future__ import annotations

import asyncio

from mqtt_fixtures import BrokerHandle, FakeSession, poll_until, sample_state

from coach.mqtt import MqttBridge, RemoteSession, codec
from coach.mqtt.link import Backoff, make_client

pytest_plugins = ["conftest_mqtt"]

ROOM = "room-5"


def fast_backoff() -> Backoff:
    return Backoff(base_s=0.05, cap_s=0.5)


async def test_view_follows_a_restart_and_drops_states_running_back(broker: BrokerHandle) -> None:
    url = broker.url()
    view = RemoteSession(url, ROOM, backoff=fast_backoff)
    async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
        view_task = tg.create_task(view.run(), name="test.view")
        room1 = FakeSession()
        bridge1 = MqttBridge(room1, url, ROOM, backoff=fast_backoff)
        first = [tg.create_task(room1.pump(), name="test.pump1"),
                 tg.create_task(bridge1.run(), name="test.bridge1")]
        await poll_until(lambda: view.stats.states >= 12, 10.0)  # 1.2 s of the first session
        assert view.session_id == bridge1.session_id

        # a state of the same session from 1 s ago (a replay, or a late copy): dropped
        old = sample_state(room1.clock.now() - 1.0).to_json(room1.t_origin_s)
        old["session_id"] = bridge1.session_id
        async with make_client(url, name="test-replay") as c:
            await c.publish(codec.state_topic(ROOM), codec.dumps(old), qos=1)
        await poll_until(lambda: view.stats.states_backwards >= 1, 5.0)
        for t in first:
            t.cancel()

        # the room restarts at once: its times start again near 0, under a new id
        room2 = FakeSession()
        bridge2 = MqttBridge(room2, url, ROOM, backoff=fast_backoff)
        assert bridge2.session_id != bridge1.session_id
        second = [tg.create_task(room2.pump(), name="test.pump2"),
                  tg.create_task(bridge2.run(), name="test.bridge2")]
        await poll_until(lambda: view.session_id == bridge2.session_id, 10.0)
        n = view.stats.states
        await poll_until(lambda: view.stats.states >= n + 5, 10.0)
        latest = view.states.latest
        assert latest is not None and latest.session_id == bridge2.session_id
        lag_s = view.clock.now() - latest.t_s
        for t in (*second, view_task):
            t.cancel()
    assert view.stats.restarts == 1
    assert view.stats.states_backwards == 1  # only the replayed state: none of room 2's
    assert -0.5 < lag_s < 0.5  # the view's time follows the new session
