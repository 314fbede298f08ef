"""``coach rooms --mqtt URL``: the rooms of a clinic that are live on a broker."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    from coach.mqtt.options import add_mqtt_arguments

    add_mqtt_arguments(p, session_side=False)
    p.add_argument("--all", action="store_true", help="also list rooms that are offline")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--wait", type=float, default=1.0, metavar="S",
                   help="seconds to collect retained room messages (default 1)")


def main(args: argparse.Namespace) -> int:
    import aiomqtt

    from coach.mqtt.link import BrokerAuthError
    from coach.mqtt.options import url_from_args
    from coach.mqtt.remote import list_rooms
    from coach.mqtt.url import MqttConfigError

    try:
        url = url_from_args(args)
        if url is None or url.embedded:
            raise MqttConfigError("give the broker with --mqtt mqtt://host[:port]")
        rooms = asyncio.run(list_rooms(url, wait_s=max(0.1, min(args.wait, 30.0)),
                                       insecure=args.mqtt_insecure))
    except (MqttConfigError, BrokerAuthError) as exc:
        print(f"coach rooms: {exc}", file=sys.stderr)
        return 2
    except aiomqtt.MqttError as exc:
        print(f"coach rooms: cannot reach MQTT broker {url}: {exc}", file=sys.stderr)
        return 1
    shown = [r for r in rooms if args.all or r.online]
    if args.json:
        print(json.dumps([_room_json(r) for r in shown]))
    else:
        for r in shown:
            print(_room_line(r))
        if not shown:
            print("no live rooms", file=sys.stderr)
    return 0


def _room_json(r: Any) -> dict[str, Any]:
    return {"room": r.room, "online": r.online,
            "control": bool(r.presence and r.presence.get("control")),
            "partners": {k: {"status": v.get("status"), "battery_pct": v.get("battery_pct")}
                         for k, v in sorted(r.statuses.items())}}


def _room_line(r: Any) -> str:
    """One line per room; what other clients left on the broker is printed escaped."""
    from coach.mqtt.codec import printable

    j = _room_json(r)
    straps = " ".join(
        printable(f"{k}:{v['status']}", 40)
        + (printable(f"({v['battery_pct']}%)", 12) if v["battery_pct"] is not None else "")
        for k, v in j["partners"].items())
    return (f"{r.room:<20} {'online' if r.online else 'offline':<8} "
            f"control={'on' if j['control'] else 'off':<4} {straps}").rstrip()
