"""Command-line options shared by every command that talks MQTT.

The lead's ``coach demo``/``run``/``dashboard`` call :func:`add_mqtt_arguments` and
then :func:`bridge_from_args` (session side) or :func:`remote_from_args` (view side).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from coach.mqtt.url import (
    PASSWORD_ENV,
    BrokerURL,
    MqttConfigError,
    check_connection_safety,
    parse_broker_url,
    with_room,
)

if TYPE_CHECKING:
    from coach.mqtt.bridge import MqttBridge, SessionLike
    from coach.mqtt.remote import RemoteSession

DEFAULT_ROOM = "room-1"


def add_mqtt_arguments(p: argparse.ArgumentParser, *, session_side: bool = True) -> None:
    """``--mqtt URL --room R --mqtt-ca F --mqtt-password-file F --mqtt-insecure``.

    ``session_side`` adds ``--allow-remote-control``.
    """
    g = p.add_argument_group("MQTT")
    g.add_argument(
        "--mqtt",
        metavar="URL",
        default=None,
        help="mqtt://[user@]host[:port][/room], mqtts://..., or 'embedded' "
        f"(password: {PASSWORD_ENV} or --mqtt-password-file)",
    )
    g.add_argument(
        "--room",
        default=None,
        metavar="ROOM",
        help=f"room name, a-z 0-9 '-' (default: from the URL, else {DEFAULT_ROOM})",
    )
    g.add_argument(
        "--mqtt-ca",
        metavar="FILE",
        default=None,
        help="CA certificate (PEM) that signed the broker's TLS certificate",
    )
    g.add_argument(
        "--mqtt-password-file",
        metavar="FILE",
        default=None,
        help="file whose first line is the MQTT password",
    )
    g.add_argument(
        "--insecure",
        "--mqtt-insecure",
        dest="mqtt_insecure",
        action="store_true",
        help="allow plaintext or anonymous MQTT to a host that is not loopback",
    )
    if session_side:
        g.add_argument(
            "--allow-remote-control",
            action="store_true",
            help="accept pause/pace/anchor/... commands from the control topic",
        )


def url_from_args(args: argparse.Namespace) -> BrokerURL | None:
    """The broker URL from parsed options (None without ``--mqtt``); checks safety.

    Raises :class:`~coach.mqtt.url.MqttConfigError` with a message safe to print.
    """
    if not getattr(args, "mqtt", None):
        return None
    url = parse_broker_url(args.mqtt, password_file=args.mqtt_password_file, ca_file=args.mqtt_ca)
    url = with_room(url, args.room)
    if url.room is None:
        url = with_room(url, DEFAULT_ROOM)
    check_connection_safety(url, insecure=args.mqtt_insecure)
    return url


def mqtt_problem(args: argparse.Namespace) -> str | None:
    """Why the ``--mqtt`` options cannot be used (unsafe or malformed), else None.

    Decided from the options alone, before any connection is tried.
    """
    try:
        url_from_args(args)
    except (MqttConfigError, ValueError) as exc:
        return str(exc)
    return None


def bridge_from_args(session: SessionLike, args: argparse.Namespace) -> MqttBridge | None:
    """An :class:`MqttBridge` for ``session`` (run it as a task), or None without --mqtt."""
    from coach.mqtt.bridge import MqttBridge

    url = url_from_args(args)
    if url is None:
        return None
    assert url.room is not None
    return MqttBridge(
        session,
        url,
        url.room,
        insecure=args.mqtt_insecure,
        allow_control=getattr(args, "allow_remote_control", False),
        announce=_to_stderr,
    )


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def remote_from_args(args: argparse.Namespace) -> RemoteSession | None:
    """A :class:`RemoteSession` (run it as a task), or None without --mqtt."""
    from coach.mqtt.remote import RemoteSession

    url = url_from_args(args)
    if url is None:
        return None
    if url.embedded:
        raise ValueError("a remote dashboard needs a broker URL, not 'embedded'")
    return RemoteSession(url, url.room, insecure=args.mqtt_insecure)
