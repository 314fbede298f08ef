"""The session side: publish a session's bus to MQTT and take commands from it.

One connection carries the room's presence (retained, with a last will), the state
stream (QoS 0, latest only), markers (QoS 1) and the control subscription. Each partner
label has its own small connection so that its retained ``status/<label>`` carries its
own last will: a crashed session shows every strap "offline".
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import aiomqtt

from coach.bus import Bus
from coach.clock import Clock, RealClock
from coach.mqtt import codec
from coach.mqtt.link import (
    Backoff,
    BrokerAuthError,
    LinkHealth,
    checked,
    clock_speed,
    keep_connected,
    make_client,
)
from coach.mqtt.url import BrokerURL, check_connection_safety, check_room
from coach.session import CommandRefused, Refusals
from coach.types import RECEIPT_IDS, Command, Marker, PartnerState, Receipt, SessionState

log = logging.getLogger(__name__)

MAX_RATE_HZ = 12.0  # cap on states per second on the wire; the session makes 10
STALE_S = 1.0  # a state older than this (wall seconds) is dropped, never sent late
MARKER_BACKLOG = 256  # markers kept while the broker is gone


class SessionLike(Protocol):
    """What the bridge needs of a session (coach.session.Session has it)."""

    states: Bus[SessionState]
    t_origin_s: float

    def command(self, cmd: Command) -> None: ...


@dataclass
class BridgeStats:
    states_published: int = 0
    states_stale: int = 0
    markers_published: int = 0
    markers_dropped: int = 0
    control_accepted: int = 0
    control_ignored: int = 0  # remote control not allowed here (or the session ended)
    control_rejected: int = 0  # malformed, out of range or retained


def _log_sparsely(count: int, msg: str, *args: Any) -> None:
    """Warn on the 1st, 2nd, 4th, 8th... occurrence: a flood cannot fill the log."""
    if count & (count - 1) == 0:
        log.warning(msg + " (%d so far)", *args, count)


class MqttBridge:
    """Publish ``session`` to ``coach/v1/<room>/...`` on ``url`` until cancelled."""

    def __init__(
        self,
        session: SessionLike,
        url: BrokerURL,
        room: str,
        *,
        allow_control: bool = False,
        insecure: bool = False,
        clock: Clock | None = None,
        max_rate_hz: float = MAX_RATE_HZ,
        backoff: Callable[[], Backoff] = Backoff,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        check_connection_safety(url, insecure=insecure)
        if insecure and not url.loopback:
            log.warning("MQTT: insecure connection to %s allowed by option", url.redacted())
        self.session, self.url, self.room = session, url, check_room(room)
        self.allow_control = allow_control
        # one id per room process: a remote view that sees it change follows the restart
        self.session_id = getattr(session, "session_id", "") or uuid.uuid4().hex[:12]
        self.clock: Clock = clock or RealClock()
        self.min_interval_s = 1.0 / max_rate_hz
        self.stats = BridgeStats()
        self.health = LinkHealth()
        self.label_health: dict[str, LinkHealth] = {}
        self.port: int | None = None if url.embedded else url.port
        self.broker: Any = None  # the embedded broker, when the URL says "embedded"
        self._backoff = backoff
        self._announce = announce  # told how to watch an embedded broker once it listens
        self._partners: dict[str, PartnerState] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._markers: deque[Marker] = deque(maxlen=MARKER_BACKLOG)
        self._marker_ready = asyncio.Event()
        self._refusals = Refusals()  # commands refused here, answered on the next state
        self._uses_sink = False
        add_sink = getattr(session, "add_sink", None)
        if callable(add_sink):
            add_sink(self._on_event)
            self._uses_sink = True

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Run until cancelled; raises BrokerAuthError for refused credentials/TLS."""
        if self.url.embedded:
            from coach.broker import EmbeddedBroker

            self.broker = EmbeddedBroker()
            await self.broker.start()
            self.port = self.broker.port
            log.info("MQTT: embedded broker on 127.0.0.1:%d", self.port)
            if self._announce is not None:
                self._announce(f"dashboard: coach dashboard --mqtt "
                               f"mqtt://127.0.0.1:{self.port}/{self.room}")
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch_states(tg), name=f"mqtt[{self.room}].watch")
                tg.create_task(
                    self._keep(self._serve_main, self.health, "main", self._presence_will()),
                    name=f"mqtt[{self.room}].main",
                )
        except* BrokerAuthError as group:
            raise group.exceptions[0] from None
        finally:
            if self.broker is not None:
                await self.broker.stop()

    def _keep(
        self,
        serve: Callable[[aiomqtt.Client], Any],
        health: LinkHealth,
        part: str,
        will: aiomqtt.Will,
    ) -> Any:
        name = f"mqtt[{self.room}].{part}"
        return keep_connected(
            name,
            lambda: make_client(
                self.url, port=self.port, name=f"coach-{self.room}-{part}", will=will
            ),
            serve,
            url=self.url,
            clock=self.clock,
            health=health,
            backoff=self._backoff(),
        )

    def _presence_will(self) -> aiomqtt.Will:
        return aiomqtt.Will(
            codec.presence_topic(self.room), codec.offline_payload(), qos=1, retain=True
        )

    async def _watch_states(self, tg: asyncio.TaskGroup) -> None:
        """Track each partner's strap status; start a status link for each new label."""
        sub = self.session.states.subscribe(maxsize=1)
        try:
            async for state in sub:
                if not self._uses_sink:
                    self._add_markers(state.markers)
                for label, partner in state.partners.items():
                    self._update_partner(tg, label, partner)
        finally:
            sub.close()

    def _update_partner(self, tg: asyncio.TaskGroup, label: str, partner: PartnerState) -> None:
        old = self._partners.get(label)
        self._partners[label] = partner
        if label not in self._changed:
            self._start_status_link(tg, label)
        elif old is None or (old.status, old.battery_pct, old.status_reason) != (
                partner.status, partner.battery_pct, partner.status_reason):
            self._changed[label].set()

    def _start_status_link(self, tg: asyncio.TaskGroup, label: str) -> None:
        self._changed[label] = asyncio.Event()
        self.label_health[label] = health = LinkHealth()
        will = aiomqtt.Will(
            codec.status_topic(self.room, label), codec.offline_payload(label), qos=1, retain=True
        )

        async def serve(client: aiomqtt.Client) -> None:
            await self._serve_status(client, label, health)

        tg.create_task(
            self._keep(serve, health, f"status-{label}", will),
            name=f"mqtt[{self.room}].status[{label}]",
        )

    # ------------------------------------------------------------------ serving one connection

    async def _serve_main(self, client: aiomqtt.Client) -> None:
        presence = {"online": True, "control": self.allow_control, "v": 1}
        await checked(
            client.publish(
                codec.presence_topic(self.room), codec.dumps(presence), qos=1, retain=True
            )
        )
        await checked(client.subscribe(codec.control_topic(self.room), qos=1))
        try:
            await self._run_main_tasks(client)
        except asyncio.CancelledError:
            await _farewell(client, codec.presence_topic(self.room), codec.offline_payload())
            raise

    async def _run_main_tasks(self, client: aiomqtt.Client) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._publish_states(client), name=f"mqtt[{self.room}].states")
                tg.create_task(self._publish_markers(client), name=f"mqtt[{self.room}].markers")
                tg.create_task(self._listen_control(client), name=f"mqtt[{self.room}].control")
        except* aiomqtt.MqttError as group:
            raise group.exceptions[0] from None

    async def _serve_status(self, client: aiomqtt.Client, label: str, health: LinkHealth) -> None:
        try:
            await _run_until_lost(client, self._publish_status(client, label, health))
        except asyncio.CancelledError:
            topic = codec.status_topic(self.room, label)
            await _farewell(client, topic, codec.offline_payload(label))
            raise

    async def _publish_status(self, client: aiomqtt.Client, label: str, health: LinkHealth) -> None:
        topic = codec.status_topic(self.room, label)
        changed = self._changed[label]
        while True:
            changed.clear()
            body = codec.status_payload(self._partners.get(label), label, self._link_info(health))
            await checked(client.publish(topic, codec.dumps(body), qos=1, retain=True))
            await changed.wait()

    def _link_info(self, health: LinkHealth) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "reconnects": health.reconnects,
            "outage_s": None if health.last_outage_s is None else round(health.last_outage_s, 3),
            "up_s": round(now - (health.connected_since_s or now), 3),
        }

    async def _publish_states(self, client: aiomqtt.Client) -> None:
        """Send each new state at once, but no more often than ``max_rate_hz``."""
        topic = codec.state_topic(self.room)
        session_clock: Clock | None = getattr(self.session, "clock", None)
        speed = clock_speed(session_clock)
        # the newest state only (stale ones are dropped), carrying the receipts of those
        # it replaces: a view waits for its command's answer
        sub = self.session.states.subscribe(maxsize=64)
        carried: list[Receipt] = []
        last_s = -math.inf
        try:
            async for state in sub:
                carried.extend(state.receipts)
                wait_s = last_s + self.min_interval_s - self.clock.now()
                if wait_s > 0:  # faster than the cap (e.g. --speed 50): keep the newest
                    await self.clock.sleep(wait_s)
                while (newer := sub.get_nowait()) is not None:
                    carried.extend(newer.receipts)
                    state = newer
                if session_clock is not None and stale_guard(
                    state.t_s, session_clock.now(), speed
                ):
                    self.stats.states_stale += 1
                    continue
                receipts = merge_receipts((*carried, *self._refusals.take()))
                carried.clear()
                if receipts != state.receipts:
                    state = replace(state, receipts=receipts)
                body = state.to_json(self.session.t_origin_s)
                body.setdefault("session_id", self.session_id)
                payload = codec.dumps(body)
                await checked(client.publish(topic, payload, qos=0, retain=False))
                self.stats.states_published += 1
                last_s = self.clock.now()
        finally:
            sub.close()

    async def _publish_markers(self, client: aiomqtt.Client) -> None:
        topic = codec.markers_topic(self.room)
        while True:
            await self._marker_ready.wait()
            while self._markers:
                m = self._markers[0]
                body = {
                    "t_s": round(m.t_s - self.session.t_origin_s, 3),
                    "kind": m.kind,
                    "note": m.note,
                }
                await checked(client.publish(topic, codec.dumps(body), qos=1, retain=False))
                self._markers.popleft()  # only once the broker has it
                self.stats.markers_published += 1
            self._marker_ready.clear()

    async def _listen_control(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.on_control(message.payload, retained=message.retain)

    # ------------------------------------------------------------------ inbound and sinks

    def on_control(self, payload: Any, *, retained: bool = False) -> None:
        """Validate one control payload and hand it to the session if allowed.

        A valid command that is not taken (remote control off, the session ended) is
        answered by a refusal on the next state; malformed ones are counted and dropped.
        """
        try:
            if retained:
                raise codec.PayloadError("retained commands are not replayed")
            if not isinstance(payload, bytes | bytearray | str):
                raise codec.PayloadError("payload is not bytes")
            cmd = codec.parse_control(payload)
        except codec.PayloadError as exc:
            self.stats.control_rejected += 1
            _log_sparsely(
                self.stats.control_rejected,
                "MQTT room %s: bad control message dropped: %s",
                self.room,
                exc,
            )
            return
        if not self.allow_control:
            self._refuse(cmd, "remote control off")
            return
        try:
            self.session.command(cmd)
        except CommandRefused as exc:
            self._refuse(cmd, str(exc))
            return
        self.stats.control_accepted += 1
        log.debug("MQTT room %s: remote command %s", self.room, cmd.kind)

    def _refuse(self, cmd: Command, reason: str) -> None:
        self.stats.control_ignored += 1
        self._refusals.add(cmd, reason)
        _log_sparsely(
            self.stats.control_ignored,
            "MQTT room %s: remote command refused: %s",
            self.room,
            reason,
        )

    def _on_event(self, event: object) -> None:
        if isinstance(event, Marker):
            self._add_markers((event,))

    def _add_markers(self, markers: tuple[Marker, ...]) -> None:
        for m in markers:
            if len(self._markers) == self._markers.maxlen:
                self.stats.markers_dropped += 1
            self._markers.append(m)
        if markers:
            self._marker_ready.set()

    def snapshot(self) -> dict[str, Any]:
        """Counters for logs and tests."""
        return {**asdict(self.stats), "connects": self.health.connects, "port": self.port}


async def _run_until_lost(client: aiomqtt.Client, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``; raise MqttError as soon as the connection drops, even if it is idle."""

    async def until_disconnected() -> None:
        async for _ in client.messages:  # this client subscribes to nothing
            pass

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(work)
            tg.create_task(until_disconnected())
    except* aiomqtt.MqttError as group:
        raise group.exceptions[0] from None


async def _farewell(client: aiomqtt.Client, topic: str, payload: bytes) -> None:
    """On a clean stop, say "offline" ourselves: a will only fires on a crash."""
    try:
        async with asyncio.timeout(1.0):
            await client.publish(topic, payload, qos=1, retain=True)
    except (aiomqtt.MqttError, TimeoutError):
        log.debug("MQTT: could not publish offline to %s", topic)


def merge_receipts(receipts: tuple[Receipt, ...]) -> tuple[Receipt, ...]:
    """Receipts for one state: refusals for the same reason summed into one, at most
    :data:`codec.MAX_RECEIPTS` in all (the oldest applied ones go first)."""
    applied = [r for r in receipts if r.outcome == "applied"]
    refused: dict[str, Receipt] = {}
    for r in receipts:
        if r.outcome != "refused":
            continue
        old = refused.get(r.reason)
        if old is None:
            refused[r.reason] = r
        else:
            refused[r.reason] = Receipt(
                "refused", old.kind if old.kind == r.kind else "",
                (*old.ids, *r.ids)[:RECEIPT_IDS], r.reason, old.count + r.count)
    room = codec.MAX_RECEIPTS - len(refused)
    return (*applied[max(0, len(applied) - room):], *refused.values())


def stale_guard(t_s: float, now_s: float, speed: float = 1.0) -> bool:
    """True if a state stamped ``t_s`` is too old to send at ``now_s``.

    Times are on the session clock, which runs ``speed`` times faster than the wall in
    a sped-up demo; staleness is what a person watching sees, so it is judged in wall
    seconds (else at ``--speed 5`` a 0.2 s hiccup of the loop would silence the room).
    """
    return not math.isfinite(t_s) or (now_s - t_s) / speed > STALE_S


__all__ = ["BridgeStats", "BrokerAuthError", "MqttBridge", "SessionLike"]
