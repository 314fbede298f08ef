"""amqtt 0.12.1 with the repairs the embedded broker needs (see :mod:`coach.broker`).

Imported only when an embedded broker starts (amqtt is a heavy import).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from coach.mqtt.codec import printable
from coach.mqtt.users import MAX_PACKET_BYTES, UserList, acl_rules, may_publish, may_read

log = logging.getLogger("coach.broker")


class UserListPlugin(BaseAuthPlugin, BaseTopicPlugin):
    """Logins and topic rights from a coach user list (``coach users``).

    Like Mosquitto with the generated ``acl_file``: a subscription is accepted, and each
    message (retained ones too, see :class:`CoachBroker`) reaches a client only if it
    may read that topic; a publish or a last will to a topic the login may not write is
    dropped (a will is refused at CONNECT, as Mosquitto does).
    """

    @dataclass
    class Config:
        users_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self.users = UserList.load(self.context.config.users_file)  # type: ignore[union-attr]

    async def authenticate(self, *, session: Session) -> bool:
        # PBKDF2 takes tens of ms: off the loop, so other clients are not held up
        user = await asyncio.to_thread(self.users.check, session.username, session.password)
        if user is None:
            log.info("MQTT login refused: %s", "anonymous" if not session.username
                     else f"user {printable(session.username)!r} unknown or wrong password")
            return False
        if session.will_flag and session.will_topic and not may_publish(user, session.will_topic):
            log.info("MQTT login of %r refused: last will on %s not allowed",
                     user.name, printable(session.will_topic))
            return False
        return True

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        user = self.users.users.get(session.username or "") if session is not None else None
        if user is None or topic is None:
            return False
        if action == Action.PUBLISH:
            allowed = may_publish(user, topic)
            if not allowed:
                log.info("MQTT: %r may not publish to %s: dropped", user.name, printable(topic))
            return allowed
        if action == Action.RECEIVE:
            return may_read(user, topic)
        return bool(acl_rules(user)[0])  # subscribe: delivery is checked per message


class _SnapshotDict(dict[str, Any]):
    """A dict whose iteration is over a copy: amqtt iterates its subscription table
    across ``await`` while other clients subscribe and unsubscribe."""

    def __iter__(self) -> Any:
        return iter(list(dict.keys(self)))

    def keys(self) -> Any:
        return list(dict.keys(self))

    def values(self) -> Any:
        return list(dict.values(self))

    def items(self) -> Any:
        return list(dict.items(self))


class _CappedReader(StreamReaderAdapter):
    """Refuse, unread, any single read beyond the cap (a publish payload is one read)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 broker: CoachBroker) -> None:
        super().__init__(reader)
        self._writer, self._broker, self._refused = writer, broker, False

    async def read(self, n: int = -1) -> bytes:
        if not self._refused and n > self._broker.max_packet_bytes:
            self._refused = True
            self._broker.packets_refused += 1
            peer = self._writer.get_extra_info("peername")
            log.warning("MQTT: a packet of %d bytes from %s is over %d: connection closed",
                        n, peer, self._broker.max_packet_bytes)
            self._writer.transport.abort()  # drop what is buffered; the sender gets a reset
        if self._refused:
            raise ConnectionResetError("packet over the size cap")
        return await super().read(n)


class CoachBroker(Broker):
    """amqtt's broker with a packet size cap, race-free subscription iteration and
    retained messages that respect subscriptions and read rights."""

    def __init__(self, config: dict[str, Any], max_packet_bytes: int = MAX_PACKET_BYTES) -> None:
        super().__init__(config)
        self._subscriptions = _SnapshotDict()
        self.max_packet_bytes = max_packet_bytes
        self.packets_refused = 0

    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        await self._client_connected(listener_name, _CappedReader(reader, writer, self),
                                     StreamWriterAdapter(writer))

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter, qos = subscription
        if all(s.client_id != session.client_id for s, _ in self._subscriptions.get(topic_filter,
                                                                                    ())):
            return  # amqtt 0.12.1 asks this for every client's filters when one connects
        handler = self._get_handler(session)
        if handler is None:
            return
        sends = []
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            if not await self._topic_filtering(session, topic, Action.RECEIVE):
                continue
            sends.append(asyncio.ensure_future(handler.mqtt_publish(
                retained.topic, retained.data, min(qos, retained.qos or qos), retain=True)))
        if sends:
            await asyncio.wait(sends)
