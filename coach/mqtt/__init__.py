"""MQTT: remote dashboards and a whole clinic on one broker.

Topics (``coach/v1/<room>/...``): ``state`` (SessionState JSON, QoS 0), ``presence`` and
``status/<label>`` (retained, with last wills), ``markers`` (QoS 1) and ``control``
(commands in, accepted only when remote control is allowed). See docs/mqtt.md.
"""

from __future__ import annotations

from coach.mqtt.bridge import BridgeStats, MqttBridge, SessionLike
from coach.mqtt.codec import (
    PayloadError,
    command_to_json,
    control_topic,
    markers_topic,
    parse_control,
    presence_topic,
    state_from_json,
    state_topic,
    status_topic,
)
from coach.mqtt.link import Backoff, BrokerAuthError
from coach.mqtt.options import (
    add_mqtt_arguments,
    bridge_from_args,
    mqtt_problem,
    remote_from_args,
    url_from_args,
)
from coach.mqtt.remote import RemoteSession, RoomInfo, list_rooms
from coach.mqtt.url import (
    BrokerURL,
    InsecureConnectionError,
    MqttConfigError,
    check_connection_safety,
    check_room,
    is_loopback_host,
    parse_broker_url,
)

__all__ = [
    "Backoff",
    "BridgeStats",
    "BrokerAuthError",
    "BrokerURL",
    "InsecureConnectionError",
    "MqttBridge",
    "MqttConfigError",
    "PayloadError",
    "RemoteSession",
    "RoomInfo",
    "SessionLike",
    "add_mqtt_arguments",
    "bridge_from_args",
    "check_connection_safety",
    "check_room",
    "command_to_json",
    "control_topic",
    "is_loopback_host",
    "list_rooms",
    "markers_topic",
    "mqtt_problem",
    "parse_broker_url",
    "parse_control",
    "presence_topic",
    "remote_from_args",
    "state_from_json",
    "state_topic",
    "status_topic",
    "url_from_args",
]
