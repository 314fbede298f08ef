"""Churn on the embedded broker: clients subscribing/unsubscribing while others connect.

amqtt 0.12.1 iterates its subscription table across ``await`` when a client connects, so
a subscription change elsewhere raised ``RuntimeError: dictionary changed size during
iteration`` (amqtt/broker.py:601) and left the new client with a CONNACK and then
nothing. ``coach.amqtt_broker.CoachBroker`` iterates over a copy. Each connecting client
connects, subscribes to the rooms' retained presence and must receive one within 5 s;
anything else is a dropped connection. Loopback only. Prints one JSON object.

    .venv/bin/python bench/mqtt_churn.py [--seconds 60] [--unpatched]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiomqtt

from coach.mqtt.link import make_client
from coach.mqtt.url import BrokerURL

ROOMS = 9


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.races = 0

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if "dictionary changed size" in f"{record.getMessage()} {exc}":
            self.races += 1


async def churn(port: int, seconds: float, *, subscribers: int = 10,
                connectors: int = 10) -> dict[str, Any]:
    """Run the churn against 127.0.0.1:port (anonymous); counts of what happened."""
    url = BrokerURL("mqtt", "127.0.0.1", port)
    loop = asyncio.get_running_loop()
    counts = {"connects": 0, "dropped": 0, "subscription_changes": 0, "subscriber_errors": 0}
    async with make_client(url, name="churn-rooms") as c:
        for k in range(ROOMS):
            await c.publish(f"coach/v1/room-{k}/presence", b'{"online":true}', qos=1, retain=True)
    stop = loop.time() + seconds

    async def subscriber(i: int) -> None:
        n = 0
        while loop.time() < stop:
            try:
                async with make_client(url, name=f"churn-sub{i}") as c:
                    for _ in range(20):  # then reconnect: a disconnect deletes table entries
                        filters = [f"coach/v1/room-{n % ROOMS}/#", f"churn/{i}/{n}"]
                        await c.subscribe([(f, 0) for f in filters])
                        await c.unsubscribe(filters)
                        counts["subscription_changes"] += 2
                        n += 1
            except aiomqtt.MqttError:
                counts["subscriber_errors"] += 1

    async def connector(i: int) -> None:
        while loop.time() < stop:
            counts["connects"] += 1
            try:
                async with asyncio.timeout(5), make_client(url, name=f"churn-con{i}") as c:
                    await c.subscribe("coach/v1/+/presence", qos=1)
                    async for _ in c.messages:
                        break
            except (aiomqtt.MqttError, TimeoutError):
                counts["dropped"] += 1

    async with asyncio.TaskGroup() as tg:
        for i in range(subscribers):
            tg.create_task(subscriber(i), name=f"churn.sub{i}")
        for i in range(connectors):
            tg.create_task(connector(i), name=f"churn.con{i}")
    return counts


async def _main(seconds: float, unpatched: bool) -> dict[str, Any]:
    from coach.broker import BrokerOptions, EmbeddedBroker, _bound_port, broker_config

    counter = _Count()
    logging.getLogger().addHandler(counter)  # the only handler: counted, not printed
    if unpatched:
        from amqtt.broker import Broker

        broker = Broker(broker_config(BrokerOptions()))
        await broker.start()
        port = _bound_port(broker._servers["default"])
        try:
            counts = await churn(port, seconds)
        finally:
            await broker.shutdown()
    else:
        async with EmbeddedBroker() as embedded:
            assert embedded.port is not None
            counts = await churn(embedded.port, seconds)
    return {"broker": "amqtt 0.12.1" + ("" if unpatched else " (CoachBroker)"),
            "seconds": seconds, **counts, "race_errors_logged": counter.races}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--unpatched", action="store_true", help="amqtt's Broker as released")
    a = ap.parse_args()
    print(json.dumps(asyncio.run(_main(a.seconds, a.unpatched))))
