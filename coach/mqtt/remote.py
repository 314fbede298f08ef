"""The dashboard side: a room's session seen through MQTT.

:class:`RemoteSession` has the surface a view uses of a local session: ``.states``
(a :class:`~coach.bus.Bus` of :class:`SessionState`), ``.command(cmd)``, ``.clock`` and
``.t_origin_s``. States are rebuilt on the local clock: ``t_origin_s`` is chosen at the
first state so that ``clock.now()`` and a state's ``t_s`` agree to within the network
latency, so the orb's trajectory animates locally exactly as it would in-process.

The bridge sends only the newest state (at most 12 a second), so the state that carried
a marker may never arrive; markers come reliably on their own topic (QoS 1). Each marker
is put on the next state this view publishes, exactly once, as a local session does.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiomqtt

from coach.bus import Bus
from coach.clock import Clock, RealClock
from coach.mqtt import codec
from coach.mqtt.link import (
    Backoff,
    LinkHealth,
    checked,
    clock_speed,
    keep_connected,
    make_client,
)
from coach.mqtt.url import BrokerURL, check_connection_safety, check_room
from coach.types import Command, Marker, SessionState

log = logging.getLogger(__name__)

RESYNC_S = 2.0  # re-anchor local time when the remote clock jumps by more (wall seconds)
COMMAND_TTL_S = 10.0  # a command queued during an outage is dropped after this
COMMAND_BACKLOG = 16
MARKERS_REMEMBERED = 256  # markers recognised when they arrive a second time

MarkerKey = tuple[float, str, str]  # (t_s relative to the session start, kind, note)


@dataclass
class RemoteStats:
    states: int = 0
    bad_messages: int = 0
    commands_sent: int = 0
    commands_expired: int = 0
    resyncs: int = 0
    restarts: int = 0  # the room's session id changed: a new session was followed
    states_backwards: int = 0  # dropped: earlier than the last state of the same session


class RemoteSession:
    """Follow ``room`` on ``url``; ``await run()`` (or a task) keeps it connected."""

    def __init__(
        self,
        url: BrokerURL,
        room: str | None = None,
        *,
        clock: Clock | None = None,
        insecure: bool = False,
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        check_connection_safety(url, insecure=insecure)
        room = room or url.room
        if room is None:
            raise ValueError("a remote session needs a room (in the URL path or --room)")
        self.url, self.room = url, check_room(room)
        self.clock: Clock = clock or RealClock()
        self.states: Bus[SessionState] = Bus()
        self.markers: Bus[Marker] = Bus()
        self.statuses: dict[str, dict[str, Any]] = {}
        self.presence: dict[str, Any] | None = None
        self.t_origin_s = 0.0
        self.stats = RemoteStats()
        self.health = LinkHealth()
        self._synced = False
        self.session_id: str | None = None  # of the room's session being followed
        self._last_rel_s = -math.inf  # its latest state time (relative to its start)
        self._backoff = backoff
        self._commands: deque[tuple[float, Command]] = deque(maxlen=COMMAND_BACKLOG)
        self._markers_seen: deque[MarkerKey] = deque(maxlen=MARKERS_REMEMBERED)
        self._markers_due: list[dict[str, Any]] = []  # marker JSON for the next state
        self._command_ready = asyncio.Event()

    @property
    def control_allowed(self) -> bool:
        """Whether the room says it accepts remote commands."""
        return bool(self.presence and self.presence.get("online") and self.presence.get("control"))

    def command(self, cmd: Command) -> None:
        """Queue ``cmd`` for the room's control topic; never blocks.

        Raises ValueError for a command the room would reject anyway.
        """
        try:
            codec.parse_control(codec.dumps(codec.command_to_json(cmd)))
        except (codec.PayloadError, TypeError) as exc:
            raise ValueError(f"command cannot be sent: {exc}") from None
        self._commands.append((self.clock.now(), cmd))
        self._command_ready.set()

    async def run(self) -> None:
        """Stay subscribed until cancelled, reconnecting with backoff."""

        def new_client() -> aiomqtt.Client:
            return make_client(self.url, name=f"coach-view-{self.room}")

        await keep_connected(
            f"mqtt-view[{self.room}]",
            new_client,
            self._serve,
            url=self.url,
            clock=self.clock,
            health=self.health,
            backoff=self._backoff(),
        )

    async def _serve(self, client: aiomqtt.Client) -> None:
        base = codec.topic(self.room)
        await checked(
            client.subscribe(
                [
                    (f"{base}/state", 0),
                    (f"{base}/status/+", 1),
                    (f"{base}/presence", 1),
                    (f"{base}/markers", 1),
                ]
            )
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._receive(client), name=f"mqtt-view[{self.room}].rx")
                tg.create_task(self._send_commands(client), name=f"mqtt-view[{self.room}].tx")
        except* aiomqtt.MqttError as group:
            raise group.exceptions[0] from None

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                self.on_message(message.topic.value, message.payload)
            except codec.PayloadError as exc:
                self.stats.bad_messages += 1
                log.warning(
                    "mqtt-view[%s]: dropped a bad message on %s: %s",
                    self.room,
                    codec.printable(message.topic.value),
                    codec.printable(exc),
                )

    def on_message(self, topic: str, payload: Any) -> None:
        """Handle one message (public so tests can feed it without a broker)."""
        if not isinstance(payload, bytes | bytearray | str):
            raise codec.PayloadError("payload is not bytes")
        kind = topic.split("/")[3:]
        obj = codec.loads_object(payload)
        if kind == ["state"]:
            self._on_state(obj)
        elif kind == ["presence"]:
            self.presence = obj
        elif len(kind) == 2 and kind[0] == "status" and kind[1] in ("A", "B", "T"):
            self.statuses[kind[1]] = obj
        elif kind == ["markers"]:
            marker = codec.marker_from_json(obj, self.t_origin_s)
            if self._first_sight(obj):
                self._markers_due.append(obj)
            self.markers.publish(marker)

    def _on_state(self, obj: dict[str, Any]) -> None:
        first = codec.state_from_json(obj, 0.0)  # validate fully before touching time
        rel, session_id = first.t_s, first.session_id
        if self.session_id is not None and session_id != self.session_id:
            self.stats.restarts += 1  # the room restarted (or a new session began there)
            log.info("mqtt-view[%s]: the room started a new session; following it", self.room)
            self._synced, self._last_rel_s = False, -math.inf
        elif rel < self._last_rel_s:
            n = self.stats.states_backwards = self.stats.states_backwards + 1
            if n & (n - 1) == 0:  # 1st, 2nd, 4th...: a flood cannot fill the log
                log.warning("mqtt-view[%s]: dropped a state earlier than the last one of the "
                            "same session (%d so far)", self.room, n)
            return
        self.session_id, self._last_rel_s = session_id, rel
        now = self.clock.now()
        resync_s = RESYNC_S * clock_speed(self.clock)  # wall seconds on a sped-up clock
        if not self._synced or abs(now - (self.t_origin_s + rel)) > resync_s:
            if self._synced:
                self.stats.resyncs += 1
            self.t_origin_s = now - rel
            self._synced = True
        state = codec.state_from_json(obj, self.t_origin_s)
        if state.markers or self._markers_due:
            fresh = [raw for raw in obj.get("markers", []) if self._first_sight(raw)]
            markers = tuple(codec.marker_from_json(raw, self.t_origin_s)
                            for raw in (*self._markers_due, *fresh))
            state = replace(state, markers=markers)
            self._markers_due.clear()
        self.states.publish(state)
        self.stats.states += 1

    def _first_sight(self, raw: dict[str, Any]) -> bool:
        """Remember a (validated) marker's JSON; False if it was seen before."""
        key = (float(raw["t_s"]), str(raw["kind"]), str(raw.get("note", "")))
        if key in self._markers_seen:
            return False
        self._markers_seen.append(key)
        return True

    async def _send_commands(self, client: aiomqtt.Client) -> None:
        topic = codec.control_topic(self.room)
        while True:
            await self._command_ready.wait()
            while self._commands:
                t_s, cmd = self._commands[0]
                if self.clock.now() - t_s > COMMAND_TTL_S:
                    self.stats.commands_expired += 1
                else:
                    payload = codec.dumps(codec.command_to_json(cmd))
                    await checked(client.publish(topic, payload, qos=1, retain=False))
                    self.stats.commands_sent += 1
                self._commands.popleft()
            self._command_ready.clear()


async def check_login(url: BrokerURL, *, insecure: bool = False) -> None:
    """Connect once and leave: :class:`~coach.mqtt.link.BrokerAuthError` (one line) if the
    broker refuses our login or its certificate; a broker that cannot be reached now is
    not an error here (a view keeps retrying it)."""
    from coach.mqtt.link import BrokerAuthError, abandon, describe_refusal

    check_connection_safety(url, insecure=insecure)
    client = make_client(url, name="coach-check")
    refusal = None
    try:
        async with asyncio.timeout(5.0):
            await checked(client.__aenter__())
        await client.__aexit__(None, None, None)
    except (aiomqtt.MqttError, TimeoutError) as exc:
        abandon(client)
        refusal = describe_refusal(exc, url)
    if refusal is not None:
        raise BrokerAuthError(refusal)


@dataclass
class RoomInfo:
    room: str
    presence: dict[str, Any] | None = None
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def online(self) -> bool:
        return bool(self.presence and self.presence.get("online"))


async def list_rooms(
    url: BrokerURL, *, wait_s: float = 1.0, insecure: bool = False
) -> list[RoomInfo]:
    """Rooms that have left a retained presence or status on the broker.

    Retained messages arrive right after subscribing; collect them for ``wait_s``.
    Raises :class:`~coach.mqtt.link.BrokerAuthError` or ``aiomqtt.MqttError``.
    """
    from coach.mqtt.link import BrokerAuthError, describe_refusal

    check_connection_safety(url, insecure=insecure)
    rooms: dict[str, RoomInfo] = {}
    try:
        async with make_client(url, name="coach-rooms") as client:
            await checked(
                client.subscribe(
                    [(f"{codec.PREFIX}/+/presence", 1), (f"{codec.PREFIX}/+/status/+", 1)]
                )
            )
            try:
                async with asyncio.timeout(wait_s):
                    async for message in client.messages:
                        _take_room_message(rooms, message.topic.value, message.payload)
            except TimeoutError:
                pass
    except aiomqtt.MqttError as exc:
        refusal = describe_refusal(exc, url)
        if refusal is not None:
            raise BrokerAuthError(refusal) from None
        raise
    return sorted(rooms.values(), key=lambda r: r.room)


def _take_room_message(rooms: dict[str, RoomInfo], topic: str, payload: Any) -> None:
    parts = topic.split("/")
    try:
        room = check_room(parts[2])
        obj = codec.loads_object(payload) if payload else None
    except (ValueError, IndexError):
        log.debug("ignoring a malformed room message on %s", codec.printable(topic))
        return
    info = rooms.setdefault(room, RoomInfo(room))
    if parts[3:] == ["presence"]:
        info.presence = obj
    elif len(parts) == 5 and parts[3] == "status" and obj is not None:
        info.statuses[parts[4]] = obj
