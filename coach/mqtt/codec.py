"""Topics and payloads of ``coach/v1``: building them and validating what arrives.

Every inbound payload is untrusted: :func:`state_from_json` and :func:`parse_control`
raise :class:`PayloadError` for anything malformed, and callers count and log the drop.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from coach.mqtt.url import check_room
from coach.types import (
    LABELS,
    RECEIPT_IDS,
    TWO_PI,
    Command,
    Marker,
    PacerState,
    PartnerState,
    Receipt,
    SessionState,
)

PREFIX = "coach/v1"
MAX_PAYLOAD_BYTES = 16_384  # a state of three partners is about 1 kB
MAX_NOTE_CHARS = 500
MAX_KIND_CHARS = 64
CONTROL_KINDS = ("pause", "resume", "anchor", "pace", "ratio", "guide", "marker", "hold",
                 "release-hold")
PACE_RANGE_BPM = (3.0, 30.0)  # breaths per minute a remote may ask for
RATIO_RANGE = (0.2, 5.0)  # inhale/exhale
STATUS_WORDS = ("ok", "connecting", "lost", "no-contact", "off")
MAX_REASON_CHARS = 200  # a strap status reason: one line
_PARTNER_NUMBERS = ("rate_bpm", "phase", "breath", "hr_bpm", "rmssd_ms", "calm", "quality")
_STATE_KEYS = ("t_s", "partners", "anchor", "pacer", "markers", "receipts", "session_id")
MAX_ID_CHARS = 64  # a command id
MAX_RECEIPTS = 64  # receipts on one state
SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


class PayloadError(ValueError):
    """An inbound MQTT payload that does not match its schema."""


def topic(room: str, *parts: str) -> str:
    """``coach/v1/<room>/<parts...>``."""
    return "/".join((PREFIX, check_room(room), *parts))


def state_topic(room: str) -> str:
    return topic(room, "state")


def status_topic(room: str, label: str) -> str:
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}")
    return topic(room, "status", label)


def presence_topic(room: str) -> str:
    return topic(room, "presence")


def markers_topic(room: str) -> str:
    return topic(room, "markers")


def control_topic(room: str) -> str:
    return topic(room, "control")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def loads_object(payload: bytes | bytearray | str) -> dict[str, Any]:
    """Decode a JSON object payload, bounded in size; PayloadError otherwise."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise PayloadError(f"not JSON: {exc.__class__.__name__}") from None
    if not isinstance(obj, dict):
        raise PayloadError("payload is not a JSON object")
    return obj


# ------------------------------------------------------------------ small validators


def _num(obj: Mapping[str, Any], key: str, *, optional: bool = True) -> float | None:
    x = obj.get(key)
    if x is None and optional:
        return None
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise PayloadError(f"{key} must be a finite number")
    try:
        value = float(x)  # OverflowError: an integer beyond any float
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise PayloadError(f"{key} must be a finite number")
    return value


def _time(t_origin_s: float, obj: Mapping[str, Any], key: str) -> float:
    """``t_origin_s`` plus a relative time, refused if the sum is not finite."""
    t = t_origin_s + (_num(obj, key, optional=False) or 0.0)
    if not math.isfinite(t):
        raise PayloadError(f"{key} is out of range")
    return t


def _text(x: Any, what: str, max_chars: int, *, optional: bool = False) -> str | None:
    if x is None and optional:
        return None
    if not isinstance(x, str) or len(x) > max_chars:
        raise PayloadError(f"{what} must be a string of at most {max_chars} characters")
    return x


# ------------------------------------------------------------------ state


def partner_from_json(label: str, obj: Any) -> PartnerState:
    if label not in LABELS or not isinstance(obj, dict):
        raise PayloadError(f"bad partner entry {label!r}")
    nums = {k: _num(obj, k) for k in _PARTNER_NUMBERS}
    if nums["phase"] is not None:
        nums["phase"] %= TWO_PI  # JSON rounding can lift 2*pi - e to 2*pi
    status = obj.get("status", "connecting")
    if status not in STATUS_WORDS:
        raise PayloadError(f"bad partner status {status!r}")
    alert = obj.get("alert")  # true, false, or null/absent: unknown
    if alert is not None and not isinstance(alert, bool):
        raise PayloadError("alert must be true, false or null")
    talking = obj.get("talking")  # the same three values
    if talking is not None and not isinstance(talking, bool):
        raise PayloadError("talking must be true, false or null")
    flags = {k: obj.get(k, False) for k in ("trusted", "sources_disagree")}
    if any(not isinstance(v, bool) for v in flags.values()):
        raise PayloadError("trusted and sources_disagree must be true or false")
    confidence = _num(obj, "confidence")
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        raise PayloadError("confidence must be in [0, 1] or null")
    battery = obj.get("battery_pct")
    if battery is not None and (type(battery) is not int or not 0 <= battery <= 100):
        raise PayloadError("battery_pct must be an integer in [0, 100]")
    try:
        return PartnerState(
            label=label,
            status=status,
            source=_text(obj.get("source"), "source", 16, optional=True),
            battery_pct=battery,
            alert=alert,
            talking=talking,
            confidence=confidence,
            **flags,
            status_reason=_text(obj.get("status_reason", ""), "status_reason",
                                MAX_REASON_CHARS) or "",
            **nums,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise PayloadError(str(exc)) from None


def pacer_from_json(obj: Any, t_origin_s: float) -> PacerState | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise PayloadError("pacer must be an object or null")
    holding = obj.get("holding", False)
    if not isinstance(holding, bool):
        raise PayloadError("pacer.holding must be a boolean")
    try:
        return PacerState(
            t0_s=_time(t_origin_s, obj, "t0_s"),
            phase0=(_num(obj, "phase0", optional=False) or 0.0) % TWO_PI,
            rate_bpm=_num(obj, "rate_bpm", optional=False) or 0.0,
            ie_ratio=_num(obj, "ie_ratio", optional=False) or 0.0,
            holding=holding,
            mode=_text(obj.get("mode", "follow"), "pacer.mode", 16) or "follow",
            target_bpm=_num(obj, "target_bpm"),
        )
    except ValueError as exc:
        raise PayloadError(str(exc)) from None


def marker_from_json(obj: Any, t_origin_s: float) -> Marker:
    if not isinstance(obj, dict):
        raise PayloadError("a marker must be an object")
    kind = _text(obj.get("kind"), "marker kind", MAX_KIND_CHARS) or ""
    note = _text(obj.get("note", ""), "marker note", MAX_NOTE_CHARS) or ""
    try:
        return Marker(
            t_s=_time(t_origin_s, obj, "t_s"), kind=kind, note=note
        )
    except ValueError as exc:
        raise PayloadError(str(exc)) from None


def receipt_from_json(obj: Any) -> Receipt:
    if not isinstance(obj, dict):
        raise PayloadError("a receipt must be an object")
    ids = obj.get("ids", [])
    if not isinstance(ids, list) or len(ids) > RECEIPT_IDS:
        raise PayloadError(f"receipt ids must be a list of at most {RECEIPT_IDS}")
    count = obj.get("count", 1)
    if type(count) is not int or not 1 <= count <= 2**53:
        raise PayloadError("receipt count must be a positive integer")
    outcome = obj.get("outcome")
    if outcome not in ("applied", "refused"):
        raise PayloadError(f"bad receipt outcome {str(outcome)[:16]!r}")
    return Receipt(
        outcome=outcome,
        kind=_text(obj.get("kind", ""), "receipt kind", 16) or "",
        ids=tuple(_text(i, "receipt id", MAX_ID_CHARS) or "" for i in ids),
        reason=_text(obj.get("reason", ""), "receipt reason", 64) or "",
        count=count,
    )


def state_from_json(obj: Mapping[str, Any], t_origin_s: float = 0.0) -> SessionState:
    """Rebuild a :class:`SessionState` from ``SessionState.to_json(t_origin_s)``.

    Relative times in the JSON become ``t_origin_s + t``. Unknown top-level keys go to
    ``extra``. ``state_from_json(s.to_json(o), o).to_json(o) == s.to_json(o)``.
    """
    partners = obj.get("partners")
    if not isinstance(partners, dict) or len(partners) > len(LABELS):
        raise PayloadError("partners must be an object keyed by label")
    anchor = obj.get("anchor")
    if anchor is not None and anchor not in LABELS:
        raise PayloadError(f"bad anchor {anchor!r}")
    markers = obj.get("markers", [])
    if not isinstance(markers, list) or len(markers) > 100:
        raise PayloadError("markers must be a list")
    receipts = obj.get("receipts", [])
    if not isinstance(receipts, list) or len(receipts) > MAX_RECEIPTS:
        raise PayloadError(f"receipts must be a list of at most {MAX_RECEIPTS}")
    session_id = obj.get("session_id", "")
    if session_id != "" and not (isinstance(session_id, str) and SESSION_ID_RE.match(session_id)):
        raise PayloadError("session_id must be 1-64 of A-Z a-z 0-9 _ -")
    return SessionState(
        t_s=_time(t_origin_s, obj, "t_s"),
        partners={k: partner_from_json(k, v) for k, v in partners.items()},
        anchor=anchor,
        pacer=pacer_from_json(obj.get("pacer"), t_origin_s),
        markers=tuple(marker_from_json(m, t_origin_s) for m in markers),
        extra={k: v for k, v in obj.items() if k not in _STATE_KEYS},
        receipts=tuple(receipt_from_json(r) for r in receipts),
        session_id=session_id,
    )


# ------------------------------------------------------------------ control


def command_to_json(cmd: Command) -> dict[str, Any]:
    out = {"kind": cmd.kind, "value": cmd.value, "note": cmd.note}
    if cmd.id:
        out["id"] = cmd.id
    return out


def _control_value(kind: str, value: Any) -> Any:
    if kind in ("pause", "resume", "release-hold"):
        return None
    if kind == "anchor":
        if value is not None and value not in LABELS:
            raise PayloadError(f"anchor must be one of {LABELS} or null")
        return value
    if kind in ("pace", "ratio"):
        lo, hi = PACE_RANGE_BPM if kind == "pace" else RATIO_RANGE
        if value is None and kind == "pace":
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise PayloadError(f"{kind} must be a number in [{lo}, {hi}]")
        return float(value)
    if kind in ("guide", "hold"):
        if not isinstance(value, bool):
            raise PayloadError(f"{kind} must be true or false")
        return value
    text = _text(value, "marker kind", MAX_KIND_CHARS) or ""
    if not text.strip():
        raise PayloadError("a marker needs a kind")
    return text


def parse_control(payload: bytes | bytearray | str) -> Command:
    """A validated :class:`Command` from a control payload; PayloadError otherwise."""
    obj = loads_object(payload)
    kind = obj.get("kind")
    if kind not in CONTROL_KINDS:
        raise PayloadError(f"unknown command kind {str(kind)[:32]!r}")
    extra = set(obj) - {"kind", "value", "note", "id"}
    if extra:
        raise PayloadError(f"unexpected keys {sorted(extra)[:5]}")
    note = _text(obj.get("note", ""), "note", MAX_NOTE_CHARS) or ""
    cmd_id = _text(obj.get("id", ""), "command id", MAX_ID_CHARS) or ""
    return Command(kind=kind, value=_control_value(kind, obj.get("value")), note=note,
                   id=cmd_id)


def command_id(payload: bytes | bytearray | str) -> str:
    """The id of a control payload, if it has a readable one ("" otherwise): a command
    refused before parsing (remote control off) is still answered by its id."""
    try:
        cmd_id = loads_object(payload).get("id", "")
    except PayloadError:
        return ""
    return cmd_id if isinstance(cmd_id, str) and len(cmd_id) <= MAX_ID_CHARS else ""


# ------------------------------------------------------------------ status, presence


def status_payload(
    partner: PartnerState | None, label: str, link: Mapping[str, Any]
) -> dict[str, Any]:
    """Retained ``status/<label>``: the strap's condition plus the bridge's link health."""
    return {
        "label": label,
        "status": partner.status if partner is not None else "connecting",
        "battery_pct": partner.battery_pct if partner is not None else None,
        "status_reason": partner.status_reason if partner is not None else "",
        "online": True,
        **link,
    }


def offline_payload(label: str | None = None) -> bytes:
    """What a will (crash) or a clean stop leaves on a retained topic."""
    body: dict[str, Any] = {"online": False, "status": "offline"}
    if label is not None:
        body["label"] = label
    return dumps(body)


# ------------------------------------------------------------------ text for a terminal

_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(x: Any, max_chars: int = 120) -> str:
    """``x`` as text safe for a terminal or a log line: control characters (escape
    sequences, line breaks, bidi overrides) escaped as ``\\x1b``, ``\\n``...; cut to
    ``max_chars``. Use it on anything that came over the network before printing it."""
    text = str(x)
    if len(text) > max_chars:
        text = text[:max_chars] + "..."
    return _UNSAFE_CHARS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
