"""An embedded MQTT broker (amqtt) for one office: loopback and an OS-chosen port by default.

Only the plugins we need are loaded: no ``$SYS`` topics and no packet logger (it would
log payloads). A broker reachable from other machines must have a password file and
should have TLS; :func:`check_listen_safety` refuses an open one unless told otherwise.

With a user list (``coach broker --users FILE``, see :mod:`coach.mqtt.users`)
``coach.amqtt_broker.UserListPlugin`` checks logins and topics. amqtt 0.12.1 (the
newest release) needs three repairs, made in ``coach.amqtt_broker.CoachBroker``:

- its own ACL plugin (``TopicAccessControlListPlugin``) cannot restrict what a client
  *receives* when configured from Python (its ``Config`` lacks ``receive_acl``), and
  retained messages are sent to a new subscriber without any check; worse, a client
  that connects is sent the retained messages of *every* client's subscriptions. Here a
  retained message goes only to a client that subscribed to it and may read it;
- it reads a whole packet into memory before looking at it (a 150 MB publish took it to
  1.4 GB): here a packet over :data:`MAX_PACKET_BYTES` closes the connection unread;
- it iterates its subscription table across ``await`` while other clients subscribe
  (``RuntimeError: dictionary changed size during iteration``, broker.py:601, which
  leaves a new client with a CONNACK and then nothing): here iteration is over a copy.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from coach.mqtt.url import InsecureConnectionError, MqttConfigError, is_loopback_host
from coach.mqtt.users import UserList

log = logging.getLogger(__name__)

_ANON = "amqtt.plugins.authentication.AnonymousAuthPlugin"
_FILE = "amqtt.plugins.authentication.FileAuthPlugin"
_USERS = "coach.amqtt_broker.UserListPlugin"


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """Where the broker listens and who may connect."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: the OS picks a free port (read it back from .port)
    password_file: str | None = None  # lines of "user:<argon2 hash>" (coach broker --hash)
    users_file: str | None = None  # a coach user list: logins and per-topic rights
    tls_port: int | None = None  # a second, TLS listener when certfile/keyfile are given
    certfile: str | None = None
    keyfile: str | None = None
    plaintext: bool = True  # also serve plaintext on ``port``
    insecure: bool = False  # allow an open or plaintext listener beyond loopback


def check_listen_safety(opts: BrokerOptions) -> None:
    """Refuse an anonymous or plaintext listener on a non-loopback address (pure)."""
    if (opts.certfile is None) != (opts.keyfile is None):
        raise MqttConfigError("TLS needs both a certificate and a key file")
    if opts.tls_port is not None and opts.certfile is None:
        raise MqttConfigError("a TLS port needs --cert and --key")
    if not opts.plaintext and opts.tls_port is None:
        raise MqttConfigError("no listener: enable plaintext or give a TLS port")
    if is_loopback_host(opts.host) or opts.insecure:
        return
    if opts.password_file is None and opts.users_file is None:
        raise InsecureConnectionError(
            f"refusing an anonymous broker on {opts.host}: give --users (or --insecure)"
        )
    if opts.plaintext:
        raise InsecureConnectionError(
            f"refusing plaintext MQTT on {opts.host}: use --tls-port with --no-plaintext "
            "(or --insecure)"
        )


def broker_config(opts: BrokerOptions) -> dict[str, Any]:
    """The amqtt configuration dictionary for ``opts``."""
    host = f"[{opts.host}]" if ":" in opts.host else opts.host
    listeners: dict[str, Any] = {}
    if opts.plaintext:
        listeners["default"] = {"type": "tcp", "bind": f"{host}:{opts.port}"}
    if opts.tls_port is not None:
        tls = {
            "type": "tcp",
            "bind": f"{host}:{opts.tls_port}",
            "ssl": True,
            "certfile": opts.certfile,
            "keyfile": opts.keyfile,
        }
        listeners["tls" if opts.plaintext else "default"] = tls
    if opts.users_file is not None:
        if opts.password_file is not None:
            raise MqttConfigError("give --users or --password-file, not both")
        UserList.load(opts.users_file)  # a damaged list is refused here, with its reason
        return {"listeners": listeners, "plugins": {_USERS: {"users_file": opts.users_file}}}
    plugins: dict[str, Any] = {_ANON: {"allow_anonymous": opts.password_file is None}}
    if opts.password_file is not None:
        if not Path(opts.password_file).is_file():
            raise MqttConfigError(f"password file not found: {opts.password_file}")
        plugins[_FILE] = {"password_file": opts.password_file}
    return {"listeners": listeners, "plugins": plugins}


class EmbeddedBroker:
    """amqtt in this event loop. ``async with EmbeddedBroker() as b: b.port``."""

    def __init__(self, opts: BrokerOptions | None = None) -> None:
        self.opts = opts or BrokerOptions()
        check_listen_safety(self.opts)
        self._broker: Any = None
        self.port: int | None = None
        self.tls_port: int | None = None

    async def start(self) -> None:
        from amqtt.errors import BrokerError

        from coach.amqtt_broker import CoachBroker  # imported late: amqtt is heavy

        self._broker = CoachBroker(broker_config(self.opts))
        quiet = _DropStartupTraceback()
        logging.getLogger("amqtt.broker").addFilter(quiet)
        try:
            await self._broker.start()
        except BrokerError as exc:  # one line for the user, not amqtt's traceback
            self._broker = None
            cause = exc.__cause__
            if isinstance(cause, ssl.SSLError):
                raise MqttConfigError(f"cannot use the TLS certificate and key: "
                                      f"{cause.reason or cause}") from None
            if isinstance(cause, OSError):
                raise cause from None  # "address already in use": the caller says where
            raise MqttConfigError(f"the MQTT broker cannot start: {cause or exc}") from None
        finally:
            logging.getLogger("amqtt.broker").removeFilter(quiet)
        servers = self._broker._servers  # amqtt exposes no public accessor (0.12.1)
        if self.opts.plaintext:
            self.port = _bound_port(servers["default"])
        if self.opts.tls_port is not None:
            self.tls_port = _bound_port(servers["tls" if self.opts.plaintext else "default"])
        log.info(
            "MQTT broker listening on %s port %s (TLS port %s)",
            self.opts.host,
            self.port,
            self.tls_port,
        )

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.shutdown()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Run until cancelled (``coach broker``)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()


class _DropStartupTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Broker startup failed"


def _bound_port(server: Any) -> int:
    return int(server.instance.sockets[0].getsockname()[1])


def hash_password(password: str) -> str:
    """An argon2 hash for an amqtt password file line ``user:<hash>``."""
    from pwdlib import PasswordHash

    return PasswordHash.recommended().hash(password)
