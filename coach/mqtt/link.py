"""One MQTT connection kept alive forever: connect, serve, back off with jitter, repeat.

A link owns no state a session needs: while the broker is gone the caller's callbacks
are not running, and everything they hand over is bounded (latest state only, a small
marker ring). Authentication and certificate failures before the first connection are
configuration errors and end the link with one clear message; later ones are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from coach.clock import Clock
from coach.mqtt.url import BrokerURL

log = logging.getLogger(__name__)

T = TypeVar("T")

KEEPALIVE_S = 5  # the broker fires our will about 1.5 keepalives after a crash
OP_TIMEOUT_S = 2.0  # connect/subscribe/publish acknowledgement deadline
CONNECT_TIMEOUT_S = 3.0  # a whole connection attempt, TCP + TLS + CONNACK
MAX_INCOMING_BYTES = 1_048_576  # a packet we will read; payloads over 16 kB are dropped anyway
_AUTH_CODES = frozenset({4, 5, 134, 135})  # MQTT 3.1.1 and 5 "bad credentials"/"not authorized"


class SparseQueueFull(logging.Filter):
    """aiomqtt warns once per message it discards from a full incoming queue: a flood
    of commands would fill the log. Count them all; let the 1st, 2nd, 4th, 8th... pass."""

    discarded = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "queue is full" not in record.getMessage():
            return True
        SparseQueueFull.discarded += 1
        n = SparseQueueFull.discarded
        if n & (n - 1):
            return False
        record.msg, record.args = f"incoming MQTT queue full: message discarded ({n} so far)", ()
        return True


PAHO_LOG = logging.getLogger("coach.mqtt.paho")
PAHO_LOG.addFilter(SparseQueueFull())


class BrokerAuthError(RuntimeError):
    """The broker refused our credentials, or TLS could not verify the broker."""


@dataclass
class Backoff:
    """Full-jitter exponential backoff (AWS architecture blog; aiomqtt reconnection docs)."""

    base_s: float = 0.1
    cap_s: float = 2.0
    rng: random.Random | None = None
    attempt: int = 0

    def next_s(self) -> float:
        rng = self.rng or random
        ceiling = min(self.cap_s, self.base_s * 2.0**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return ceiling * (0.5 + 0.5 * rng.random())

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class LinkHealth:
    """Connection history of one link, published in status payloads."""

    connects: int = 0
    connected: bool = False
    down_since_s: float | None = None
    last_outage_s: float | None = None
    connected_since_s: float | None = None

    def up(self, now_s: float) -> None:
        if self.down_since_s is not None and self.connects > 0:
            self.last_outage_s = now_s - self.down_since_s
        self.connects += 1
        self.connected = True
        self.connected_since_s = now_s
        self.down_since_s = None

    def down(self, now_s: float) -> None:
        if self.connected or self.down_since_s is None:
            self.down_since_s = now_s
        self.connected = False

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


def clock_speed(clock: Clock | None) -> float:
    """Session seconds per wall second (``RealClock.speed``; 1 for other clocks)."""
    speed = getattr(clock, "speed", 1.0)
    if isinstance(speed, int | float) and math.isfinite(speed) and speed > 0:
        return float(speed)
    return 1.0


async def checked(aw: Awaitable[T]) -> T:
    """Await an aiomqtt call without losing a cancellation.

    aiomqtt waits with ``asyncio.wait_for``, which on Python 3.11 can swallow a
    cancellation that arrives as the acknowledgement does (gh-86296, fixed in 3.12); a
    loop around it would then never stop. A cancel requested during the await shows as
    a rise of ``cancelling()`` (compared, not tested for zero: a 3.11 TaskGroup leaves
    its parent's count raised after a child fails); re-raise it here.
    """
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    result = await aw
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError
    return result


def make_client(
    url: BrokerURL,
    *,
    port: int | None = None,
    name: str = "coach",
    will: aiomqtt.Will | None = None,
) -> aiomqtt.Client:
    """An aiomqtt client for ``url``; call inside the running loop."""
    tls_context = None
    if url.tls:
        tls_context = ssl.create_default_context(cafile=url.ca_file)
    client = aiomqtt.Client(
        url.host,
        url.port if port is None else port,
        username=url.username,
        password=url.password if url.username else None,
        identifier=f"{name}-{uuid.uuid4().hex[:8]}",
        will=will,
        keepalive=KEEPALIVE_S,
        timeout=OP_TIMEOUT_S,
        tls_context=tls_context,
        max_queued_incoming_messages=256,
        max_queued_outgoing_messages=256,
        logger=PAHO_LOG,
    )
    _cap_incoming(client)
    _quiet_after_cancel(client)
    return client


def _quiet_after_cancel(client: aiomqtt.Client) -> None:
    """Keep paho's disconnect callback from raising once a connect was cancelled.

    A connect cancelled while the broker's answer (a refused login) is already waiting on
    the socket: aiomqtt's ``wait_for`` cancels its CONNACK future and yields once more
    before we can :func:`abandon` the client; in that pass paho reads the answer, hangs
    up, and aiomqtt's disconnect callback asks the cancelled future for its exception,
    which raises inside the loop ("Exception in callback"). Nothing waits for that
    disconnect any more. Private attributes of aiomqtt 2.5 and paho 2.2.
    """
    paho = getattr(client, "_client", None)
    inner = getattr(paho, "on_disconnect", None)
    if inner is None:
        return

    def on_disconnect(*args: Any, **kwargs: Any) -> None:
        connected = getattr(client, "_connected", None)
        if isinstance(connected, asyncio.Future) and connected.cancelled():
            return
        inner(*args, **kwargs)

    paho.on_disconnect = on_disconnect


def _cap_incoming(client: aiomqtt.Client, max_bytes: int = MAX_INCOMING_BYTES) -> None:
    """Hang up on an incoming packet over ``max_bytes`` before reading it into memory.

    paho reads a whole packet before handing it over (a 150 MB publish: 150 MB here),
    and a broker without a size cap forwards anything. paho 2.2 reads a packet's length
    first, then its body through ``_sock_recv``; refusing that read makes paho drop the
    connection (the link reconnects). Private attributes of paho 2.2.
    """
    paho = getattr(client, "_client", None)
    recv = getattr(paho, "_sock_recv", None)
    if paho is None or recv is None or not isinstance(getattr(paho, "_in_packet", None), dict):
        return

    def capped_recv(bufsize: int) -> bytes:
        incoming = paho._in_packet
        if incoming["have_remaining"] and incoming["remaining_length"] > max_bytes:
            log.warning("MQTT: an incoming packet of %d bytes is over %d: hanging up",
                        incoming["remaining_length"], max_bytes)
            raise ConnectionAbortedError("incoming MQTT packet over the size cap")
        return recv(bufsize)

    paho._sock_recv = capped_recv


def abandon(client: aiomqtt.Client) -> None:
    """Forget a client whose connect failed or was cancelled, quietly.

    aiomqtt 2.5 leaves paho's socket and a task on the loop when a connect fails or is
    interrupted (its blocking part may even finish later in an executor thread), and the
    CONNACK future it cancelled makes paho's disconnect callback raise inside the loop:
    "Exception in callback", or "Event loop is closed" and "Task was destroyed" at exit.
    Close the socket, now or as soon as it opens (the cancelled future is
    :func:`_quiet_after_cancel`'s). Private attributes of aiomqtt 2.5 and paho 2.2.
    """
    paho = getattr(client, "_client", None)
    if paho is None:
        return
    with contextlib.suppress(Exception):
        paho._sock_close()
    # a connect still running in its executor thread must not reach the loop any more
    paho.on_socket_open = _close_socket
    paho.on_socket_close = paho.on_socket_register_write = _ignore_socket
    paho.on_socket_unregister_write = _ignore_socket


def _close_socket(_client: object, _userdata: object, sock: object) -> None:
    with contextlib.suppress(Exception):
        sock.close()  # type: ignore[attr-defined]


def _ignore_socket(_client: object, _userdata: object, _sock: object) -> None:
    pass


def describe_refusal(exc: Exception, url: BrokerURL) -> str | None:
    """One line for a configuration error (credentials, certificate), else None."""
    where = f"MQTT broker {url.host}:{url.port}"
    if isinstance(exc, MqttConnectError):
        code = getattr(exc.rc, "value", exc.rc)
        if code in _AUTH_CODES:
            who = f"user {url.username!r}" if url.username else "an anonymous client"
            return f"{where} refused the login of {who}: wrong user name or password"
    text = str(exc)
    if "mismatch" in text and ("CERTIFICATE_VERIFY_FAILED" in text or "verify failed" in text):
        return (f"{where}: its TLS certificate is not for {url.host!r} (hostname mismatch): "
                "connect by a name the certificate lists")
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        ca = f"not signed by the CA in {url.ca_file}" if url.ca_file else "not trusted"
        return f"{where}: TLS certificate {ca} (give the broker's CA with --mqtt-ca)"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return f"{where}: TLS handshake failed (is this a TLS port?)"
    return None


async def keep_connected(
    name: str,
    new_client: Callable[[], aiomqtt.Client],
    serve: Callable[[aiomqtt.Client], Awaitable[None]],
    *,
    url: BrokerURL,
    clock: Clock,
    health: LinkHealth,
    backoff: Backoff | None = None,
) -> None:
    """Connect, run ``serve(client)``, and reconnect with jittered backoff forever.

    Returns only if ``serve`` returns. Raises :class:`BrokerAuthError` if the broker
    refuses us before we ever got in; cancelling stops it cleanly.
    """
    backoff = backoff or Backoff()
    while True:
        fatal: str | None = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = new_client()
                # aiomqtt's connect has been seen to hang past its own timeout while a
                # broker restarts: bound it here
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT_S):
                        await checked(stack.enter_async_context(client))
                except BaseException:
                    abandon(client)
                    raise
                health.up(clock.now())
                backoff.reset()
                log.info("%s: connected to %s", name, url.redacted())
                await serve(client)
                return
        except (aiomqtt.MqttError, TimeoutError) as exc:
            fatal = _note_failure(name, exc, url, health, clock)
        if fatal is not None:  # raised outside the handler: no chain keeps paho's socket alive
            raise BrokerAuthError(fatal)
        await clock.sleep(backoff.next_s())


def _note_failure(
    name: str, exc: Exception, url: BrokerURL, health: LinkHealth, clock: Clock
) -> str | None:
    """Log a lost or failed connection; return a message if it is a fatal refusal."""
    refusal = describe_refusal(exc, url)
    if refusal is not None and health.connects == 0:
        return refusal
    first = health.connected or health.down_since_s is None
    health.down(clock.now())
    if first:
        log.warning("%s: %s; reconnecting", name, refusal or f"broker link lost ({exc})")
    else:
        log.debug("%s: still down (%s)", name, exc)
    return None
