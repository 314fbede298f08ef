"""Broker URLs, credentials and the connection-safety rule.

Everything here is pure: deciding whether a connection is allowed never sends a packet,
so the rule is testable without a network. Passwords never reach ``str()``, ``repr()``
or a log line; use :meth:`BrokerURL.redacted` to show a URL.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

Scheme = Literal["mqtt", "mqtts", "embedded"]

PASSWORD_ENV = "COACH_MQTT_PASSWORD"
USERNAME_ENV = "COACH_MQTT_USERNAME"
DEFAULT_PORTS: Mapping[str, int] = {"mqtt": 1883, "mqtts": 8883, "embedded": 0}
# \Z, not $: "$" would let "room-1\n" in
ROOM_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?\Z")


class MqttConfigError(ValueError):
    """A broker URL or option that cannot be used. The message never holds a secret."""


class InsecureConnectionError(MqttConfigError):
    """A plaintext or anonymous connection to a host that is not loopback."""


def check_room(room: str) -> str:
    """Return ``room`` if it is a valid room name: 1-32 of ``[a-z0-9-]``, no edge dashes.

    Room names go into topics; keep names of people and health words out of them.
    """
    if not isinstance(room, str) or not ROOM_RE.match(room):
        raise MqttConfigError(
            "room must be 1-32 characters of a-z, 0-9 and '-', not starting or ending "
            f"with '-', got {room!r}"
        )
    return room


@dataclass(frozen=True, slots=True)
class BrokerURL:
    """Where and how to connect. ``password`` is hidden from ``repr`` and ``str``."""

    scheme: Scheme
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    room: str | None = None
    ca_file: str | None = None

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    @property
    def embedded(self) -> bool:
        return self.scheme == "embedded"

    @property
    def loopback(self) -> bool:
        return self.embedded or is_loopback_host(self.host)

    def redacted(self) -> str:
        """The URL with the password replaced by ``***`` (safe to print and log)."""
        if self.embedded:
            return "embedded"
        user = ""
        if self.username is not None:
            user = self.username + (":***" if self.password else "") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        room = f"/{self.room}" if self.room else ""
        return f"{self.scheme}://{user}{host}:{self.port}{room}"

    def __str__(self) -> str:
        return self.redacted()


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``; decided without DNS."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_broker_url(
    url: str,
    *,
    password_file: str | os.PathLike[str] | None = None,
    ca_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> BrokerURL:
    """Parse ``mqtt://[user[:pass]@]host[:port][/room]``, ``mqtts://...`` or ``embedded``.

    The password comes from the URL, else ``password_file`` (first line), else the
    ``COACH_MQTT_PASSWORD`` environment variable; the user name from the URL or
    ``COACH_MQTT_USERNAME``. ``?ca=PATH`` in the URL names a CA file for ``mqtts``.
    """
    env = os.environ if env is None else env
    if url.strip() in ("embedded", "embedded://"):
        return BrokerURL("embedded", "127.0.0.1", 0)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise MqttConfigError("malformed broker URL (port or host)") from None
    if parts.scheme not in ("mqtt", "mqtts"):
        raise MqttConfigError(
            f"broker URL scheme must be mqtt://, mqtts:// or 'embedded', got {parts.scheme!r}"
        )
    if not parts.hostname:
        raise MqttConfigError("broker URL has no host")
    room = unquote(parts.path.strip("/")) or None
    if room is not None:
        check_room(room)
    query = parse_qs(parts.query)
    username = unquote(parts.username) if parts.username else env.get(USERNAME_ENV) or None
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and password_file is not None:
        password = read_password_file(password_file)
    if password is None:
        password = env.get(PASSWORD_ENV) or None
    return BrokerURL(
        scheme=parts.scheme,  # type: ignore[arg-type]
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        username=username,
        password=password,
        room=room,
        ca_file=ca_file or (query.get("ca") or [None])[0],
    )


def read_password_file(path: str | os.PathLike[str]) -> str:
    """The first line of a password file, without its line end."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MqttConfigError(f"cannot read password file {str(path)!r}: {exc.strerror}") from None
    line = text.splitlines()[0] if text else ""
    if not line:
        raise MqttConfigError(f"password file {str(path)!r} is empty")
    return line


def check_connection_safety(url: BrokerURL, *, insecure: bool = False) -> None:
    """Refuse plaintext or anonymous connections to anything but loopback.

    Decided from the URL alone, before any connection. ``insecure=True`` overrides it
    (a lab network you trust); the bridge logs a warning when it does.
    """
    if url.loopback or insecure:
        return
    problems = []
    if not url.tls:
        problems.append("plaintext (use mqtts://)")
    if not url.username or not url.password:
        problems.append("anonymous (give a user and COACH_MQTT_PASSWORD or a password file)")
    if problems:
        raise InsecureConnectionError(
            f"refusing a {' and '.join(problems)} connection to {url.host}, which is not "
            "loopback; pass --insecure to allow it"
        )


def with_room(url: BrokerURL, room: str | None) -> BrokerURL:
    """``url`` with its room set from ``room`` if given (an explicit option wins)."""
    if room is None:
        return url
    return replace(url, room=check_room(room))
