"""What on a state deserves the therapist's eye: lost straps, low batteries, arousal.

The session decides what is physiologically alarming (a partner's ``alert``, or alerts
in ``state.extra``); this module only gathers those and the strap conditions into
short, ordered lines for the dashboard's banner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from coach.types import PartnerState, SessionState
from ui import style

Severity = Literal["alert", "warn", "info"]
_RANK = {"alert": 0, "warn": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class Alert:
    severity: Severity
    text: str
    label: str | None = None


def partner_alerts(p: PartnerState) -> list[Alert]:
    """Strap and arousal alerts for one partner."""
    out: list[Alert] = []
    who = f"Partner {p.label}" if p.label != "T" else "Therapist strap"
    if p.status == "lost":
        out.append(Alert("alert", f"{who}: strap lost - reconnecting", p.label))
    elif p.status == "no-contact":
        out.append(Alert("alert", f"{who}: no skin contact - moisten or refit the strap",
                         p.label))
    elif p.status == "off":
        out.append(Alert("warn", f"{who}: strap off", p.label))
    if p.battery_pct is not None and p.battery_pct <= style.LOW_BATTERY_PCT:
        out.append(Alert("warn", f"{who}: low battery {p.battery_pct}%", p.label))
    flag = getattr(p, "alert", None)  # arousal etc., if the session sets it
    if flag:
        out.append(Alert("alert", f"{who}: {_describe(flag)}", p.label))
    return out


def state_alerts(state: SessionState) -> list[Alert]:
    """Every alert on a state, most severe first."""
    out: list[Alert] = []
    for label in sorted(state.partners):
        out.extend(partner_alerts(state.partners[label]))
    out.extend(_extra_alerts(state.extra.get("alerts")))
    return sorted(out, key=lambda a: _RANK[a.severity])


def _extra_alerts(raw: Any) -> Iterable[Alert]:
    """Alerts published in ``state.extra["alerts"]``: a list, or a mapping by label."""
    if not raw:
        return []
    if isinstance(raw, dict):
        items: list[Any] = [
            {"label": k, "message": v} if not isinstance(v, dict) else {"label": k, **v}
            for k, v in raw.items()
        ]
    elif isinstance(raw, list | tuple):
        items = list(raw)
    else:
        items = [raw]
    out = []
    for item in items:
        if isinstance(item, dict):
            label = item.get("label")
            text = _describe(item)
            sev = item.get("severity", "alert")
            sev = sev if sev in _RANK else "alert"
            out.append(Alert(sev, f"Partner {label}: {text}" if label else text, label))
        else:
            out.append(Alert("alert", str(item)))
    return out


def _describe(flag: Any) -> str:
    if isinstance(flag, dict):
        for key in ("message", "text", "kind", "type"):
            if flag.get(key):
                return str(flag[key])
        return "alert"
    if flag is True:
        return "arousal rising"
    return str(flag)
