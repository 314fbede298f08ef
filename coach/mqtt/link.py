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
from typing import TypeVar

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from coach.clock import Clock
from coach.mqtt.url import BrokerURL

log = logging.getLogger(__name__)

T = TypeVar("T")

KEEPALIVE_S = 5  # the broker fires our will about 1.5 keepalives after a crash
OP_TIMEOUT_S = 2.0  # connect/subscribe/publish acknowledgement deadline
CONNECT_TIMEOUT_S = 3.0  # a whole connection attempt, TCP + TLS + CONNACK
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
    return aiomqtt.Client(
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


def describe_refusal(exc: Exception, url: BrokerURL) -> str | None:
    """One line for a configuration error (credentials, certificate), else None."""
    where = f"MQTT broker {url.host}:{url.port}"
    if isinstance(exc, MqttConnectError):
        code = getattr(exc.rc, "value", exc.rc)
        if code in _AUTH_CODES:
            who = f"user {url.username!r}" if url.username else "an anonymous client"
            return f"{where} refused the login of {who}: wrong user name or password"
    if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc):
        return f"{where}: TLS certificate not trusted (give the broker's CA with --mqtt-ca)"
    if "WRONG_VERSION_NUMBER" in str(exc) or "record layer failure" in str(exc):
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
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await checked(stack.enter_async_context(client))
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
