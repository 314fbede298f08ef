"""``coach dashboard --mqtt URL --room NAME``: the therapist dashboard of a remote room."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from coach.mqtt import add_mqtt_arguments

    add_mqtt_arguments(p, session_side=False)
    p.add_argument("--orb", action="store_true", help="also show the orb (e.g. on the room's TV)")
    p.add_argument("--screen", type=int, default=None, help="display index for the orb")


def main(args: argparse.Namespace) -> int:
    import asyncio

    from coach.mqtt import BrokerAuthError, MqttConfigError, remote_from_args
    from coach.mqtt.remote import check_login

    try:
        remote = remote_from_args(args)
        if remote is not None:  # a refused login is one line, before any window opens
            asyncio.run(check_login(remote.url, insecure=args.mqtt_insecure))
    except (MqttConfigError, ValueError, BrokerAuthError) as exc:
        print(f"coach dashboard: {exc}", file=sys.stderr)
        return 2
    if remote is None:
        print("coach dashboard: give the broker with --mqtt URL (and --room NAME)", file=sys.stderr)
        return 2
    from ui.app import WindowOptions, run_windows
    from ui.bridge import display_problem

    if problem := display_problem():
        print(f"coach dashboard: {problem}; run it on a desktop or under Xvfb", file=sys.stderr)
        return 2

    opts = WindowOptions(orb=args.orb, dashboard=True, screen=args.screen, autostart=True,
                         labels=("A", "B"))
    return run_windows(remote, remote.run, opts)
