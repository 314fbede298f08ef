"""The dashboard's top line: session time, anchor, the orb's pace, synchrony."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

from coach.types import PacerState, SessionState
from ui import style

_MODE_TEXT = {"follow": "following the anchor", "manual": "fixed pace",
              "guide": "guiding to resonance", "paused": "paused"}


def _ratio_text(ie_ratio: float) -> str:
    """4:6 style text for an inhale/exhale ratio (4/6 -> "4:6", 1 -> "1:1")."""
    if abs(ie_ratio - 1.0) < 0.01:
        return "1:1"
    for inhale in (4, 3, 5, 1, 2):
        exhale = inhale / ie_ratio
        if abs(exhale - round(exhale)) < 0.02 and 0 < round(exhale) <= 12:
            return f"{inhale}:{round(exhale)}"
    return f"1:{1 / ie_ratio:.2f}"


def pacer_text(pacer: PacerState | None) -> str:
    if pacer is None:
        return "Orb: waiting for both partners' breathing"
    mode = _MODE_TEXT.get(pacer.mode, pacer.mode)
    return (f"Orb <b>{pacer.rate_bpm:.1f}</b> /min \u00b7 in:out "
            f"{_ratio_text(pacer.ie_ratio)} \u00b7 {mode}")


def sync_text(sync: Mapping[str, Any] | None) -> str:
    """Synchrony now against chance, the session's share beyond chance, and whom the orb
    follows (the anchor's locking to the orb is the orb's doing, not theirs)."""
    if not sync:
        return ""
    parts = []
    value, chance = sync.get("breath_ppc"), sync.get("breath_ppc_chance")
    if isinstance(value, int | float):
        text = f"Breath sync <b>{value:.2f}</b>"
        if isinstance(chance, int | float):
            word = "beyond chance" if value > chance else "within chance"
            text += f" ({word}: {chance:.2f})"
        parts.append(text)
    session = sync.get("session")
    share = session.get("synchrony_beyond_chance_percent") if isinstance(session, Mapping) \
        else None
    if isinstance(share, int | float):
        parts.append(f"time synchronous beyond chance <b>{share:.0f} %</b> "
                     f"of {session.get('windows')} min")
    follows = sync.get("orb_follows")
    if isinstance(follows, str):
        parts.append(f"the orb follows {follows}")
    return " \u00b7 ".join(parts)


class Header(QFrame):
    """Session clock and state, anchor, pace, holding, synchrony, one line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 6, 12, 6)
        row.setSpacing(22)
        self.time = QLabel("00:00")
        self.time.setObjectName("big")
        self.run_state = QLabel("not started")
        self.run_state.setObjectName("muted")
        self.anchor = QLabel("Anchor \u2013")
        self.anchor.setObjectName("big")
        self.pacer = QLabel(pacer_text(None))
        self.pacer.setStyleSheet("font-size: 15px;")
        self.holding = QLabel("")
        self.sync = QLabel("")
        for w in (self.time, self.run_state, self.anchor, self.pacer, self.holding):
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(self.sync)
        self._holding_shown = False

    def show_state(self, state: SessionState, t_origin_s: float) -> None:
        seconds = max(0.0, state.t_s - t_origin_s)
        self.time.setText(f"{int(seconds // 60):02d}:{int(seconds % 60):02d}")
        color = style.PARTNER_COLOR.get(state.anchor or "", style.MUTED)
        anchor = state.anchor or "\u2013"
        handover = state.extra.get("anchor_handover")
        note = (f' <small>(handed over {handover}: strap lost)</small>'
                if isinstance(handover, str) and handover.endswith(f"-> {anchor}") else "")
        self.anchor.setText(f'Anchor <span style="color:{color}">{anchor}</span>{note}')
        self.pacer.setText(pacer_text(state.pacer))
        holding = state.pacer is not None and state.pacer.holding
        if holding != self._holding_shown:
            self._holding_shown = holding
            self.holding.setText(" HOLDING " if holding else "")
            self.holding.setStyleSheet(
                f"background: {style.WARN_COLOR}; color: #111; border-radius: 4px;"
                " font-weight: 700; padding: 2px 6px;" if holding else "")
        sync = state.extra.get("synchrony")
        self.sync.setText(sync_text(sync if isinstance(sync, Mapping) else None))

    def set_running(self, running: bool, ended: bool = False) -> None:
        self.run_state.setText("running" if running else ("ended" if ended else "not started"))
