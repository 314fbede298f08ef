"""Pure MQTT pieces: URLs and the safety rule (no packets sent), payload validation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mqtt_fixtures import sample_state

from coach.broker import BrokerOptions, check_listen_safety
from coach.mqtt import (
    InsecureConnectionError,
    MqttConfigError,
    PayloadError,
    check_connection_safety,
    check_room,
    parse_broker_url,
    parse_control,
    state_from_json,
)
from coach.mqtt.codec import dumps
from coach.types import TWO_PI, Command, PartnerState, SessionState

SECRET = "s3cr3t-pw"


def test_password_from_url_file_or_env_and_never_shown(tmp_path) -> None:
    u = parse_broker_url(f"mqtts://ann:{SECRET}@broker.example:8884/room-2", env={})
    assert (u.host, u.port, u.username, u.password, u.room) == (
        "broker.example", 8884, "ann", SECRET, "room-2")
    assert SECRET not in str(u) + repr(u) + u.redacted()
    f = tmp_path / "pw"
    f.write_text(SECRET + "\n")
    assert parse_broker_url("mqtt://ann@h", password_file=f, env={}).password == SECRET
    env = {"COACH_MQTT_PASSWORD": SECRET, "COACH_MQTT_USERNAME": "bob"}
    u = parse_broker_url("mqtt://h", env=env)
    assert (u.username, u.password, u.port) == ("bob", SECRET, 1883)
    assert parse_broker_url("embedded").embedded


@pytest.mark.parametrize("url", ["http://h", "mqtt://", "mqtt://h:99999", "mqtt://h/Room_1"])
def test_bad_urls_are_refused_without_echoing_secrets(url: str) -> None:
    with pytest.raises(MqttConfigError) as err:
        parse_broker_url(url.replace("//", f"//u:{SECRET}@", 1) if "//" in url else url, env={})
    assert SECRET not in str(err.value)


@pytest.mark.parametrize(("url", "insecure", "ok"), [
    ("mqtt://127.0.0.1", False, True),
    ("mqtt://localhost", False, True),
    ("mqtt://[::1]:1883", False, True),
    ("embedded", False, True),
    ("mqtt://u:p@10.0.0.5", False, False),  # plaintext beyond loopback
    ("mqtts://10.0.0.5", False, False),  # anonymous beyond loopback
    ("mqtts://u@10.0.0.5", False, False),  # user without a password
    ("mqtts://u:p@10.0.0.5", False, True),
    ("mqtt://10.0.0.5", True, True),
    ("mqtt://127.0.0.1.evil.example", False, False),  # looks loopback, is not
])
def test_safety_rule_is_decided_from_the_url(url: str, insecure: bool, ok: bool) -> None:
    u = parse_broker_url(url, env={})
    if ok:
        check_connection_safety(u, insecure=insecure)
    else:
        with pytest.raises(InsecureConnectionError):
            check_connection_safety(u, insecure=insecure)


def test_broker_listen_safety() -> None:
    check_listen_safety(BrokerOptions())
    with pytest.raises(InsecureConnectionError):
        check_listen_safety(BrokerOptions(host="0.0.0.0"))
    with pytest.raises(InsecureConnectionError):
        check_listen_safety(BrokerOptions(host="0.0.0.0", password_file="p"))
    with pytest.raises(InsecureConnectionError, match="plaintext"):  # users, but no TLS
        check_listen_safety(BrokerOptions(host="0.0.0.0", users_file="u"))
    check_listen_safety(BrokerOptions(host="0.0.0.0", users_file="u", plaintext=False,
                                      tls_port=8883, certfile="c", keyfile="k"))


@pytest.mark.parametrize("room", ["", "-a", "a-", "Room", "a/b", "a+", "#", "x" * 33, "é",
                                  "room-1\n", "a\n"])
def test_room_names(room: str) -> None:
    with pytest.raises(MqttConfigError):
        check_room(room)
    assert check_room("couples-3") == "couples-3"


@pytest.mark.parametrize(("payload", "cmd"), [
    ({"kind": "pause"}, Command("pause")),
    ({"kind": "pace", "value": 6}, Command("pace", 6.0)),
    ({"kind": "pace", "value": None}, Command("pace", None)),
    ({"kind": "anchor", "value": "B"}, Command("anchor", "B")),
    ({"kind": "ratio", "value": 0.667}, Command("ratio", 0.667)),
    ({"kind": "guide", "value": True}, Command("guide", True)),
    ({"kind": "marker", "value": "repair", "note": "n"}, Command("marker", "repair", "n")),
])
def test_good_control_messages(payload: dict, cmd: Command) -> None:
    assert parse_control(dumps(payload)) == cmd


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"[]", b'{"kind":"baseline"}', b'{"kind":"shutdown"}',
    b'{"kind":"pace","value":"fast"}', b'{"kind":"pace","value":1000}',
    b'{"kind":"pace","value":NaN}', b'{"kind":"anchor","value":"Z"}',
    b'{"kind":"guide","value":1}', b'{"kind":"marker","value":"  "}',
    b'{"kind":"pause","extra":1}', b'{"kind":"marker","value":"x","note":' + b'"a' * 9000 + b'"}',
])
def test_bad_control_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_control(raw)


@given(t=st.floats(0, 1e5), k=st.integers(0, 10_000), origin=st.floats(-1e4, 1e4))
def test_state_round_trips_through_json(t: float, k: int, origin: float) -> None:
    s = sample_state(origin + t, k)
    j = s.to_json(origin)
    again = state_from_json(j, origin).to_json(origin)
    # the pacer's "phase" is derived at t_s, which JSON rounds to the millisecond
    phase, phase_again = j["pacer"].pop("phase"), again["pacer"].pop("phase")
    assert again == j
    assert abs(phase - phase_again) < TWO_PI * 6.5 / 60 * 0.001 + 2e-6


def test_session_id_round_trips_and_stays_out_of_extra() -> None:
    s = SessionState(1.0, {}, session_id="3f9a0c")
    back = state_from_json(s.to_json(0.0), 0.0)
    assert back.session_id == "3f9a0c" and "session_id" not in back.extra


def test_breathing_confidence_trust_and_disagreement_round_trip() -> None:
    a = PartnerState("A", source="ecg", confidence=0.42, trusted=True, sources_disagree=True)
    back = state_from_json(SessionState(1.0, {"A": a}).to_json(0.0), 0.0).partners["A"]
    assert (back.source, back.confidence, back.trusted, back.sources_disagree) == (
        "ecg", 0.42, True, True)
    # a state from a room that does not send them yet: unknown confidence, not trusted
    old = state_from_json({"t_s": 1, "partners": {"A": {"rate_bpm": 7}}}, 0.0).partners["A"]
    assert (old.confidence, old.trusted, old.sources_disagree) == (None, False, False)


@pytest.mark.parametrize("value", [True, False, None])
def test_alert_and_talking_travel_as_true_false_or_unknown(value: bool | None) -> None:
    a = PartnerState("A", alert=value, talking=value)
    back = state_from_json(SessionState(1.0, {"A": a}).to_json(0.0), 0.0).partners["A"]
    assert (back.alert, back.talking) == (value, value)


def test_rounded_phase_near_two_pi_is_wrapped() -> None:
    s = SessionState(1.0, {"A": PartnerState("A", phase=TWO_PI - 1e-6)})
    back = state_from_json(s.to_json(0.0), 0.0)
    assert 0.0 <= back.partners["A"].phase < TWO_PI  # type: ignore[operator]


@pytest.mark.parametrize("bad", [
    {}, {"t_s": 1, "partners": []}, {"t_s": "x", "partners": {}},
    {"t_s": 1, "partners": {"Q": {}}}, {"t_s": 1, "partners": {"A": {"calm": 7}}},
    {"t_s": 1, "partners": {}, "pacer": {"t0_s": 0, "phase0": 0, "rate_bpm": -1, "ie_ratio": 1}},
    {"t_s": math.inf, "partners": {}},
    {"t_s": 1, "partners": {}, "session_id": 7}, {"t_s": 1, "partners": {}, "session_id": "a\n"},
    {"t_s": 1, "partners": {}, "session_id": "\x1b[2J"},
    {"t_s": 1, "partners": {"A": {"confidence": 1.5}}},
    {"t_s": 1, "partners": {"A": {"confidence": "high"}}},
    {"t_s": 1, "partners": {"A": {"trusted": "yes"}}},
    {"t_s": 1, "partners": {"A": {"sources_disagree": 1}}},
    {"t_s": 1, "partners": {"A": {"talking": "yes"}}},
    {"t_s": 1, "partners": {"A": {"alert": 1}}},
])
def test_bad_states_are_refused(bad: dict) -> None:
    with pytest.raises(PayloadError):
        state_from_json(bad, 0.0)


def test_strap_status_reason_travels_in_state_and_status() -> None:
    from coach.mqtt.codec import status_payload

    p = PartnerState("B", status="lost", status_reason="attempt 3: le-connection-abort-by-local")
    back = state_from_json(SessionState(2.0, {"B": p}).to_json(0.0), 0.0).partners["B"]
    assert (back.status, back.status_reason) == ("lost", "attempt 3: le-connection-abort-by-local")
    status = status_payload(p, "B", {})
    assert (status["status"], status["status_reason"]) == (
        "lost", "attempt 3: le-connection-abort-by-local")
    older = state_from_json({"t_s": 1, "partners": {"A": {"status": "ok"}}}, 0.0)
    assert older.partners["A"].status_reason == ""  # a state from before the field
    with pytest.raises(PayloadError):
        state_from_json({"t_s": 1, "partners": {"A": {"status_reason": "x" * 201}}}, 0.0)
