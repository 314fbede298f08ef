"""Events that flow from straps into the pipeline, and the states that flow out.

Every event and state carries ``t_s``: host monotonic seconds from the session's
:class:`~coach.clock.Clock`. Units are in field names. Waveforms travel as chunks: the
time of their first sample, a sampling rate, and a read-only numpy array.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

TWO_PI = 2.0 * math.pi

Label = str
"""A participant label: ``A``, ``B`` (the couple) or ``T`` (the therapist). Never a name."""

LABELS: tuple[Label, ...] = ("A", "B", "T")

StrapCondition = Literal["ok", "connecting", "lost", "no-contact", "off"]


def _check_label(label: str) -> None:
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, got {label!r}")


def _frozen_array(values: Any, ndim: int) -> np.ndarray:
    arr = np.array(values, dtype=np.float64)  # a private copy the caller cannot change
    if arr.ndim != ndim:
        raise ValueError(f"expected a {ndim}-d array, got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class HeartRate:
    """One Heart Rate Measurement notification (0x2A37), already in host time.

    ``beat_t_s`` holds the host time of each beat that ends an interval in ``rr_ms``;
    plain straps have no clock, so the driver back-dates them from the arrival ``t_s``.
    """

    t_s: float
    label: Label
    hr_bpm: float
    rr_ms: tuple[float, ...] = ()
    beat_t_s: tuple[float, ...] = ()
    contact: bool | None = None

    def __post_init__(self) -> None:
        _check_label(self.label)
        if len(self.rr_ms) != len(self.beat_t_s):
            raise ValueError("rr_ms and beat_t_s must have the same length")
        if any(r <= 0 for r in self.rr_ms):
            raise ValueError("rr_ms must be positive")


@dataclass(frozen=True, slots=True)
class AccChunk:
    """Chest accelerometer samples in mG, shape (n, 3); ``t_s`` is the first sample's time."""

    t_s: float
    label: Label
    fs_hz: float
    acc_mg: np.ndarray

    def __post_init__(self) -> None:
        _check_label(self.label)
        if self.fs_hz <= 0:
            raise ValueError("fs_hz must be positive")
        arr = _frozen_array(self.acc_mg, 2)
        if arr.shape[1] != 3:
            raise ValueError(f"acc_mg must have 3 columns, got {arr.shape}")
        object.__setattr__(self, "acc_mg", arr)

    @property
    def end_s(self) -> float:
        """Time just after the last sample."""
        return self.t_s + len(self.acc_mg) / self.fs_hz


@dataclass(frozen=True, slots=True)
class EcgChunk:
    """ECG samples in microvolts, shape (n,); ``t_s`` is the first sample's time."""

    t_s: float
    label: Label
    fs_hz: float
    ecg_uv: np.ndarray

    def __post_init__(self) -> None:
        _check_label(self.label)
        if self.fs_hz <= 0:
            raise ValueError("fs_hz must be positive")
        object.__setattr__(self, "ecg_uv", _frozen_array(self.ecg_uv, 1))

    @property
    def end_s(self) -> float:
        return self.t_s + len(self.ecg_uv) / self.fs_hz


@dataclass(frozen=True, slots=True)
class StrapStatus:
    """What a strap's link is doing: connected, skin contact, battery."""

    t_s: float
    label: Label
    condition: StrapCondition
    battery_pct: int | None = None
    note: str = ""

    def __post_init__(self) -> None:
        _check_label(self.label)
        if self.battery_pct is not None and not 0 <= self.battery_pct <= 100:
            raise ValueError("battery_pct must be in [0, 100]")


StrapEvent = HeartRate | AccChunk | EcgChunk | StrapStatus


@dataclass(frozen=True, slots=True)
class Marker:
    """A therapist's event marker ("rupture", "repair", free text...)."""

    t_s: float
    kind: str
    note: str = ""

    def __post_init__(self) -> None:
        if not self.kind.strip():
            raise ValueError("a marker needs a kind")


CommandKind = Literal[
    "pause", "resume", "anchor", "pace", "ratio", "guide", "marker", "baseline", "hold",
    "release-hold",
]


@dataclass(frozen=True, slots=True)
class Command:
    """A command from a view to the session.

    ``anchor``: value is a label or None (automatic); ``pace``: breaths/min or None
    (automatic); ``ratio``: inhale/exhale; ``guide``: bool; ``marker``: value is the
    marker kind and ``note`` its text. ``hold`` (value bool): keep breathing at the
    present rate; ``pause``: the orb rests at the end of its exhale (``resume`` ends
    both). ``release-hold``: lift the hold an alert put on the pacer, for the partners
    alerting now or unobserved since they alerted.
    """

    kind: CommandKind
    value: Any = None
    note: str = ""
    id: str = ""  # the view's id for it, echoed in the session's receipt ("" = none)


ReceiptOutcome = Literal["applied", "refused"]
REFUSAL_REASONS = ("remote control off", "session ended", "rate limited")


@dataclass(frozen=True, slots=True)
class Receipt:
    """The session's answer to commands: applied, or refused with a reason.

    One receipt may answer many commands (a burst beyond the rate limit gets one summed
    refusal): ``count`` is how many, ``ids`` the first of their ids (at most
    :data:`RECEIPT_IDS`), so a view can tell its own command's fate.
    """

    outcome: ReceiptOutcome
    kind: str = ""  # the command kind ("" when a summed receipt answers several kinds)
    ids: tuple[str, ...] = ()
    reason: str = ""  # for a refusal: one of REFUSAL_REASONS
    count: int = 1

    def __post_init__(self) -> None:
        if self.outcome not in ("applied", "refused"):
            raise ValueError(f"bad receipt outcome {self.outcome!r}")
        if self.count < 1:
            raise ValueError("a receipt answers at least one command")

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "kind": self.kind, "ids": list(self.ids),
                "reason": self.reason, "count": self.count}


RECEIPT_IDS = 8  # ids a summed receipt lists (a view sends a few a second)


# ----------------------------------------------------------------------------- states


def finite_or_none(x: float | None, digits: int = 4) -> float | None:
    """A JSON-safe number: None for unknown, NaN or infinite values."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), digits)


@dataclass(frozen=True, slots=True)
class PartnerState:
    """What the session knows about one person at one moment. None = unknown."""

    label: Label
    status: StrapCondition = "connecting"
    rate_bpm: float | None = None  # breaths per minute
    phase: float | None = None  # radians in [0, 2*pi), 0 at inhale onset
    breath: float | None = None  # breathing waveform, about -1 (empty) .. 1 (full)
    hr_bpm: float | None = None  # beats per minute
    rmssd_ms: float | None = None
    calm: float | None = None  # [0, 1]
    source: str | None = None  # breathing source in use: "acc", "ecg", "rr"
    quality: float | None = None  # [0, 1]
    battery_pct: int | None = None
    alert: bool | None = False  # arousal spike: outside the window of tolerance; None unknown
    coherence: float | None = None  # heart rhythm coherence ratio
    rsa_bpm: float | None = None  # respiratory sinus arrhythmia, peak to valley per breath, bpm
    regularity: float | None = None  # [0, 1], breath-to-breath
    confidence: float | None = None  # [0, 1], of the breathing rate (coach/breath.py)
    trusted: bool = False  # confidence has held the gate for 30 s: the pacer may follow
    sources_disagree: bool = False  # chest motion and heart rate disagree on the rate
    status_reason: str = ""  # why the strap is not ok, one line ("attempt 3: timed out")
    talking: bool | None = None  # speech now (coach.talk); None = cannot tell

    def __post_init__(self) -> None:
        _check_label(self.label)
        if self.phase is not None and not 0.0 <= self.phase < TWO_PI:
            raise ValueError(f"phase must be in [0, 2*pi), got {self.phase}")
        if self.calm is not None and not 0.0 <= self.calm <= 1.0:
            raise ValueError(f"calm must be in [0, 1], got {self.calm}")

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rate_bpm": finite_or_none(self.rate_bpm, 3),
            "phase": finite_or_none(self.phase),
            "breath": finite_or_none(self.breath, 3),
            "hr_bpm": finite_or_none(self.hr_bpm, 2),
            "rmssd_ms": finite_or_none(self.rmssd_ms, 2),
            "calm": finite_or_none(self.calm, 3),
            "source": self.source,
            "quality": finite_or_none(self.quality, 3),
            "battery_pct": self.battery_pct,
            "alert": self.alert,
            "coherence": finite_or_none(self.coherence, 3),
            "rsa_bpm": finite_or_none(self.rsa_bpm, 2),
            "regularity": finite_or_none(self.regularity, 3),
            "confidence": finite_or_none(self.confidence, 3),
            "trusted": self.trusted,
            "sources_disagree": self.sources_disagree,
            "status_reason": self.status_reason,
            "talking": self.talking,
        }


@dataclass(frozen=True, slots=True)
class PacerState:
    """The orb as a trajectory: phase ``phase0`` at ``t0_s``, advancing at ``rate_bpm``.

    Views animate it at their own frame rate with :meth:`phase_at`; it stays exact until
    the next state. ``ie_ratio`` is inhale time over exhale time (4:6 -> 0.667).
    """

    t0_s: float
    phase0: float
    rate_bpm: float
    ie_ratio: float = 4.0 / 6.0
    holding: bool = False  # the pacer holds its rate (alert, lost anchor, paused)
    mode: str = "follow"  # "follow", "manual", "guide", "held", "paused" (at rest), "alert"
    target_bpm: float | None = None  # where the rate is heading (a fixed pace), if known

    def __post_init__(self) -> None:
        if not 0.0 <= self.phase0 < TWO_PI:
            raise ValueError(f"phase0 must be in [0, 2*pi), got {self.phase0}")
        if not (self.rate_bpm > 0 and math.isfinite(self.rate_bpm)):
            raise ValueError(f"rate_bpm must be positive, got {self.rate_bpm}")
        if not self.ie_ratio > 0:
            raise ValueError("ie_ratio must be positive")

    def phase_at(self, t_s: float) -> float:
        """Orb phase in radians at host time ``t_s``.

        Paused, the orb finishes its breath and rests at the end of the exhale.
        """
        phase = self.phase0 + TWO_PI * self.rate_bpm / 60.0 * (t_s - self.t0_s)
        if self.mode == "paused":
            return min(phase, REST_PHASE)
        return phase % TWO_PI

    @property
    def inhale_fraction(self) -> float:
        """Share of a cycle spent inhaling (4:6 -> 0.4)."""
        return self.ie_ratio / (1.0 + self.ie_ratio)

    def level_at(self, t_s: float) -> float:
        """Orb fullness in [0, 1]: grows on the inhale, shrinks on the exhale, eased."""
        return orb_level(self.phase_at(t_s), self.inhale_fraction)

    def to_json(self) -> dict[str, Any]:
        return {
            "t0_s": round(self.t0_s, 6),
            "phase0": round(self.phase0, 6),
            "phase": round(self.phase0, 6),
            "rate_bpm": round(self.rate_bpm, 4),
            "ie_ratio": round(self.ie_ratio, 4),
            "holding": self.holding,
            "mode": self.mode,
            **({} if self.target_bpm is None else {"target_bpm": round(self.target_bpm, 3)}),
        }


REST_PHASE = TWO_PI * (1.0 - 1e-9)  # the end of an exhale, where a paused orb rests


def orb_level(phase: float, inhale_fraction: float) -> float:
    """Fullness in [0, 1] for a phase: a cosine ease up over the inhale, down over the exhale."""
    x = (phase % TWO_PI) / TWO_PI
    if x < inhale_fraction:
        u = x / inhale_fraction
        return 0.5 - 0.5 * math.cos(math.pi * u)
    u = (x - inhale_fraction) / (1.0 - inhale_fraction)
    return 0.5 + 0.5 * math.cos(math.pi * u)


@dataclass(frozen=True, slots=True)
class SessionState:
    """One snapshot of the whole session: what every view renders."""

    t_s: float
    partners: Mapping[Label, PartnerState]
    anchor: Label | None = None
    pacer: PacerState | None = None
    markers: tuple[Marker, ...] = ()  # markers set since the previous state
    extra: Mapping[str, Any] = field(default_factory=dict)
    receipts: tuple[Receipt, ...] = ()  # answers to commands since the previous state
    session_id: str = ""  # set by whoever publishes it: a restarted room gets a new one

    def to_json(self, t_origin_s: float = 0.0) -> dict[str, Any]:
        """The JSON object printed by ``coach demo --json`` and published over MQTT.

        Times are given relative to ``t_origin_s`` (the session start).
        """
        pacer = None
        if self.pacer is not None:
            pacer = self.pacer.to_json()
            pacer["t0_s"] = round(self.pacer.t0_s - t_origin_s, 6)
            pacer["phase"] = round(self.pacer.phase_at(self.t_s), 6)
        out: dict[str, Any] = {
            "t_s": round(self.t_s - t_origin_s, 3),
            "partners": {k: p.to_json() for k, p in sorted(self.partners.items())},
            "anchor": self.anchor,
            "pacer": pacer,
        }
        if self.markers:
            out["markers"] = [
                {"t_s": round(m.t_s - t_origin_s, 3), "kind": m.kind, "note": m.note}
                for m in self.markers
            ]
        if self.receipts:
            out["receipts"] = [r.to_json() for r in self.receipts]
        out.update(self.extra)
        if self.session_id:
            out["session_id"] = self.session_id
        return out
