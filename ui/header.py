"""The dashboard's top line: session time, anchor, the orb's pace, synchrony."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QWidget

from coach.config import PACER_SLEW_BPM_PER_MIN
from coach.types import PacerState, SessionState
from ui import style

_MODE_TEXT = {"follow": "following the anchor", "manual": "fixed pace",
              "guide": "guiding to resonance", "held": "holding this pace",
              "paused": "paused: resting after the exhale", "alert": "holding: arousal alert"}
_BADGE = {"paused": " PAUSED ", "held": " HELD "}  # else " HOLDING " while it holds


def _ratio_text(ie_ratio: float) -> str:
    """4:6 style text for an inhale/exhale ratio (4/6 -> "4:6", 1 -> "1:1")."""
    if abs(ie_ratio - 1.0) < 0.01:
        return "1:1"
    for inhale in (4, 3, 5, 1, 2):
        exhale = inhale / ie_ratio
        if abs(exhale - round(exhale)) < 0.02 and 0 < round(exhale) <= 12:
            return f"{inhale}:{round(exhale)}"
    return f"1:{1 / ie_ratio:.2f}"


def minutes_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def pacer_text(pacer: PacerState | None, baseline_left_s: float | None = None) -> str:
    """The orb's pace and what it is doing, in words that match what the couple sees."""
    listening = (f"listening: baseline {minutes_text(baseline_left_s)} left"
                 if baseline_left_s is not None else None)
    if pacer is None:
        waiting = "Orb: waiting for both partners' breathing"
        return f"{waiting} \u00b7 {listening}" if listening else waiting
    mode = _MODE_TEXT.get(pacer.mode, pacer.mode)
    if pacer.mode == "follow" and listening:
        mode = listening
    elif pacer.mode == "manual" and pacer.target_bpm is not None:
        gap = abs(pacer.target_bpm - pacer.rate_bpm)
        eta = "reached" if gap < 0.05 else (
            f"there in {minutes_text(60.0 * gap / PACER_SLEW_BPM_PER_MIN)}")
        mode = f"fixed pace {pacer.target_bpm:.1f} /min, {eta}"
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
        grid = QGridLayout(self)
        grid.setContentsMargins(12, 4, 12, 4)
        grid.setHorizontalSpacing(18)
        grid.setVerticalSpacing(0)
        self.time = QLabel("00:00")
        self.time.setObjectName("big")
        self.run_state = QLabel("not started")
        self.run_state.setObjectName("muted")
        self.anchor = QLabel("Anchor \u2013")
        self.anchor.setObjectName("big")
        self.pacer = QLabel(pacer_text(None))
        self.pacer.setStyleSheet("font-size: 15px;")
        self.pacer.setWordWrap(True)  # long words wrap: the header never widens the window
        self.holding = QLabel("")
        self.sync = QLabel("")
        self.sync.setWordWrap(True)
        for col, w in enumerate((self.time, self.run_state, self.anchor, self.pacer,
                                 self.holding)):
            grid.addWidget(w, 0, col)
        grid.setColumnStretch(3, 1)
        grid.addWidget(self.sync, 1, 0, 1, 5)  # a line of its own: it is the longest
        self._holding_shown = ""
        self._run_word = "not started"
        self._stale = ""

    def show_state(self, state: SessionState, t_origin_s: float) -> None:
        if self._stale:
            self.set_stale("")
        seconds = max(0.0, state.t_s - t_origin_s)
        self.time.setText(f"{int(seconds // 60):02d}:{int(seconds % 60):02d}")
        color = style.PARTNER_COLOR.get(state.anchor or "", style.MUTED)
        anchor = state.anchor or "\u2013"
        handover = state.extra.get("anchor_handover")
        note = (f' <small>(handed over {handover}: strap lost)</small>'
                if isinstance(handover, str) and handover.endswith(f"-> {anchor}") else "")
        self.anchor.setText(f'Anchor <span style="color:{color}">{anchor}</span>{note}')
        left = state.extra.get("baseline_left_s")
        left = float(left) if isinstance(left, int | float) else None
        self.pacer.setText(pacer_text(state.pacer, left))
        pacer = state.pacer
        badge = ""
        if pacer is not None and pacer.holding and not (left is not None
                                                        and pacer.mode == "follow"):
            badge = _BADGE.get(pacer.mode, " HOLDING ")  # not while it only listens
        if badge != self._holding_shown:
            self._holding_shown = badge
            self.holding.setText(badge)
            self.holding.setStyleSheet(
                f"background: {style.WARN_COLOR}; color: #111; border-radius: 4px;"
                " font-weight: 700; padding: 2px 6px;" if badge else "")
        sync = state.extra.get("synchrony")
        self.sync.setText(sync_text(sync if isinstance(sync, Mapping) else None))

    def set_running(self, running: bool, ended: bool = False) -> None:
        self._run_word = "running" if running else ("ended" if ended else "not started")
        if not self._stale:
            self.run_state.setText(self._run_word)

    def set_stale(self, word: str) -> None:
        """Grey, values dashed, the clock stopped and marked with ``word`` ("no data",
        "offline", "ended"); "" to go back to showing states."""
        if word == self._stale:
            return
        self._stale = word
        if word:
            self.setStyleSheet(f"QLabel {{ color: {style.MUTED}; }}")
            self.run_state.setText(word if word == "ended" else
                                   f"\u25a0 clock stopped \u00b7 {word}")
            self.anchor.setText("Anchor \u2013")
            self.pacer.setText("Orb \u2013 /min")
            self.holding.setText("")
            self.holding.setStyleSheet("")
            self._holding_shown = ""
            self.sync.setText("")
        else:
            self.setStyleSheet("")
            self.run_state.setText(self._run_word)
