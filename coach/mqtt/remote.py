"""The dashboard side: a room's session seen through MQTT.

:class:`RemoteSession` has the surface a view uses of a local session: ``.states``
(a :class:`~coach.bus.Bus` of :class:`SessionState`), ``.command(cmd)``, ``.clock`` and
``.t_origin_s``. States keep the room's session time (``t_origin_s`` is 0: a state's
``t_s`` is seconds since the session started), whatever the room's speed; the view's
``clock`` is derived from them (:class:`StateClock`): the newest state's time, run on
at the room's measured speed, so the orb's trajectory animates locally as it would
in-process, and a room at ``--speed 5`` draws as it does at 1x. ``wall`` is the local
clock, for the link and for how old the newest state is (``state_age_s``).

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
    keep_connected,
    make_client,
)
from coach.mqtt.url import BrokerURL, check_connection_safety, check_room
from coach.types import Command, Marker, SessionState

log = logging.getLogger(__name__)

RESTART_S = 2.0  # session seconds a state may run back in time before it means a restart
SPEED_WINDOW_S = 4.0  # wall seconds of states the room's speed is measured over
COAST_S = 1.0  # wall seconds the view's clock runs on past the newest state, then stops
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
    resyncs: int = 0  # the room's session time ran back (a restarted room)
    restarts: int = 0  # the room's session id changed: a new session was followed
    states_backwards: int = 0  # dropped: earlier than the last state of the same session


class StateClock:
    """Session time as a remote view sees it: the newest state's ``t_s``, run on at the
    room's speed (measured over the last :data:`SPEED_WINDOW_S` of states) for at most
    :data:`COAST_S` wall seconds; it never runs back, except when the room restarts."""

    def __init__(self, wall: Clock) -> None:
        self.wall = wall
        self.speed = 1.0
        self._seen: deque[tuple[float, float]] = deque()  # (wall s, session t_s)
        self._shown = -math.inf

    def observe(self, t_s: float) -> bool:
        """Take a state's time; True if it ran back (a restart: the clock starts over)."""
        w = self.wall.now()
        restart = bool(self._seen) and t_s < self._seen[-1][1] - RESTART_S
        if restart:
            self._seen.clear()
            self._shown = -math.inf
        self._seen.append((w, t_s))
        while len(self._seen) > 2 and self._seen[0][0] < w - SPEED_WINDOW_S:
            self._seen.popleft()
        (w0, t0), (w1, t1) = self._seen[0], self._seen[-1]
        if w1 - w0 >= 0.5 and t1 > t0:
            self.speed = (t1 - t0) / (w1 - w0)
        return restart

    def restart(self) -> None:
        """A new session: forget the old one's times."""
        self._seen.clear()
        self._shown = -math.inf

    def now(self) -> float:
        if not self._seen:
            return 0.0
        w_last, t_last = self._seen[-1]
        ahead = min(max(0.0, self.wall.now() - w_last), COAST_S)
        self._shown = max(self._shown, t_last + ahead * self.speed)
        return self._shown

    async def sleep_until(self, t_s: float) -> None:
        await self.sleep(t_s - self.now())

    async def sleep(self, dt_s: float) -> None:
        await self.wall.sleep(max(0.0, dt_s) / self.speed)

    def run(self, main: Any) -> Any:
        return self.wall.run(main)


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
        self.wall: Clock = clock or RealClock()
        self.clock = StateClock(self.wall)
        self.states: Bus[SessionState] = Bus()
        self.markers: Bus[Marker] = Bus()
        self.statuses: dict[str, dict[str, Any]] = {}
        self.presence: dict[str, Any] | None = None
        self.t_origin_s = 0.0
        self.stats = RemoteStats()
        self.health = LinkHealth()
        self.last_state_wall_s: float | None = None  # when the newest state arrived
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

    @property
    def room_online(self) -> bool | None:
        """What the room's retained presence says (its last will: False); None unknown."""
        if self.presence is None:
            return None
        return bool(self.presence.get("online"))

    def state_age_s(self) -> float | None:
        """Wall seconds since the newest state arrived; None before the first."""
        if self.last_state_wall_s is None:
            return None
        return self.wall.now() - self.last_state_wall_s

    def command(self, cmd: Command) -> None:
        """Queue ``cmd`` for the room's control topic; never blocks.

        Raises ValueError for a command the room would reject anyway.
        """
        try:
            codec.parse_control(codec.dumps(codec.command_to_json(cmd)))
        except (codec.PayloadError, TypeError) as exc:
            raise ValueError(f"command cannot be sent: {exc}") from None
        self._commands.append((self.wall.now(), cmd))
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
            clock=self.wall,
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
        state = codec.state_from_json(obj, 0.0)  # validated fully before touching time
        rel, session_id = state.t_s, state.session_id
        if self.session_id is not None and session_id != self.session_id:
            self.stats.restarts += 1  # the room restarted (or a new session began there)
            log.info("mqtt-view[%s]: the room started a new session; following it", self.room)
            self._last_rel_s = -math.inf
            self.clock.restart()
        elif rel < self._last_rel_s:
            n = self.stats.states_backwards = self.stats.states_backwards + 1
            if n & (n - 1) == 0:  # 1st, 2nd, 4th...: a flood cannot fill the log
                log.warning("mqtt-view[%s]: dropped a state earlier than the last one of the "
                            "same session (%d so far)", self.room, n)
            return
        self.session_id, self._last_rel_s = session_id, rel
        if self.clock.observe(rel):
            self.stats.resyncs += 1
            log.info("mqtt-view[%s]: the room's session time ran back: a new session",
                     self.room)
        self.last_state_wall_s = self.wall.now()
        if state.markers or self._markers_due:
            fresh = [raw for raw in obj.get("markers", []) if self._first_sight(raw)]
            markers = tuple(codec.marker_from_json(raw, 0.0)
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
                if self.wall.now() - t_s > COMMAND_TTL_S:
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
