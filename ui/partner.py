"""One partner's card on the dashboard: numbers, strap status, breathing waveform."""

from __future__ import annotations

import html
import math

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QProgressBar, QWidget

from coach.types import PartnerState
from ui import style
from ui.plotkit import add_curve, make_plot, set_curve, title_legend

_STATUS_TEXT = {
    "ok": ("connected", style.OK_COLOR),
    "connecting": ("connecting...", style.INFO_COLOR),
    "lost": ("LOST", style.ALERT_COLOR),
    "no-contact": ("NO CONTACT", style.ALERT_COLOR),
    "off": ("off", style.WARN_COLOR),
}
_SOURCE_TEXT = {"acc": "ACC", "ecg": "ECG", "rr": "RR"}


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    """A number for display, or an en dash when unknown."""
    if value is None or not math.isfinite(value):
        return "\u2013"
    text = f"{value:.{digits}f}"
    return f"{text} {unit}".rstrip()


def _label(text: str = "", name: str | None = None) -> QLabel:
    lab = QLabel(text)
    if name:
        lab.setObjectName(name)
    return lab


class PartnerPanel(QFrame):
    """Numbers on the left, the breathing waveform with the orb overlaid on the right."""

    def __init__(self, label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = label
        self.setObjectName("card")
        self._color = style.PARTNER_COLOR.get(label, style.TEXT)
        self._alerting: bool | None = False  # None: greyed, no current data
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 8, 10, 8)
        row.addWidget(self._build_numbers(), 0)
        self.plot = make_plot("", "breath", "rel.", "time", "s", y_range=(-1.5, 1.5))
        self.plot.setXRange(-style.WAVE_WINDOW_S, 0, padding=0)
        title_legend(self.plot, "", [(f"breathing {label}", self._color, False),
                                     ("orb", style.PACER_COLOR, True)])
        self.breath_curve = add_curve(self.plot, f"breathing {label}", self._color, 2.0)
        self.orb_curve = add_curve(self.plot, "orb", style.PACER_COLOR, 1.6, dashed=True)
        row.addWidget(self.plot, 1)

    def _build_numbers(self) -> QWidget:
        box = QWidget()
        box.setFixedWidth(280)
        grid = QGridLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(2)
        who = "Therapist (T)" if self.label == "T" else f"Partner {self.label}"
        self.title = _label(who, "title")
        self.title.setStyleSheet(f"color: {self._color};")
        self.badge = _label("")
        self.badge.setStyleSheet(f"color: {style.PACER_COLOR}; font-weight: 700;")
        grid.addWidget(self.title, 0, 0)
        grid.addWidget(self.badge, 0, 1, Qt.AlignmentFlag.AlignRight)
        self.hr = self._value(grid, 1, 0, "heart rate")
        self.rate = self._value(grid, 1, 1, "breathing")
        # the secondary figures on one line of ordinary text: the card stays short
        self.rmssd, self.extra = _label(""), _label("")
        self._extra_caption = _label("", "muted")
        small = QHBoxLayout()
        small.setSpacing(6)
        for w in (_label("RMSSD", "muted"), self.rmssd, self._extra_caption, self.extra):
            small.addWidget(w)
        small.addStretch(1)
        grid.addLayout(small, 3, 0, 1, 2)
        calm_row = QHBoxLayout()
        calm_row.addWidget(_label("calm", "muted"))
        self.calm = QProgressBar()
        self.calm.setRange(0, 100)
        self.calm.setFormat("\u2013")
        calm_row.addWidget(self.calm, 1)
        grid.addLayout(calm_row, 4, 0, 1, 2)
        self.strap = _label("")
        self.strap.setWordWrap(True)
        # room for two lines, always: a wrapped status must not be cut off
        self.strap.setMinimumHeight(2 * self.strap.fontMetrics().lineSpacing() + 6)
        self.strap.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        grid.addWidget(self.strap, 5, 0, 1, 2)
        grid.setRowStretch(6, 1)
        return box

    @staticmethod
    def _value(grid: QGridLayout, row: int, col: int, name: str) -> QLabel:
        caption = _label(name, "muted")
        grid.addWidget(caption, row, col)
        value = _label("", "big")
        grid.addWidget(value, row + 1, col)
        return value

    def set_stale(self, word: str) -> None:
        """No current data (``word``: "no data", "offline", "ended"): grey, values dashed,
        and no claim about the strap."""
        for w in (self.hr, self.rate, self.rmssd):
            w.setText("\u2013")
        self.extra.setText("")
        self._extra_caption.setText("")
        self.calm.setValue(0)
        self.calm.setFormat("\u2013")
        self.badge.setText("")
        self.strap.setText(f'<span style="color:{style.MUTED}; font-weight:700">'
                           f"\u25cb {word}</span>")
        self._alerting = None
        self.setStyleSheet(f"QFrame#card {{ border: 1px dashed {style.PANEL_EDGE}; }}"
                           f" QLabel {{ color: {style.MUTED}; }}")

    def show_state(self, p: PartnerState, anchor: str | None, alerting: bool) -> None:
        """Write one partner's latest numbers and strap status."""
        self.hr.setText(fmt(p.hr_bpm, 0, "bpm"))
        self.rate.setText(fmt(p.rate_bpm, 1, "/min"))
        self.rmssd.setText(fmt(p.rmssd_ms, 0, "ms"))
        if p.calm is None:
            self.calm.setValue(0)
            self.calm.setFormat("\u2013")
        else:
            self.calm.setValue(round(100 * p.calm))
            self.calm.setFormat(f"{p.calm:.2f}")
        self.badge.setText("\u2693 ANCHOR" if anchor == self.label else "")
        coherence = getattr(p, "coherence", None)  # shown only when the session has it
        self.extra.setText(fmt(coherence, 2) if coherence is not None else "")
        self._extra_caption.setText("coherence" if coherence is not None else "")
        self.strap.setText(strap_text(p))
        if alerting != self._alerting:  # style sheets are costly: only on change
            self._alerting = alerting
            edge = style.ALERT_COLOR if alerting else style.PANEL_EDGE
            width = 2 if alerting else 1
            self.setStyleSheet(f"QFrame#card {{ border: {width}px solid {edge}; }}")

    def show_wave(self, t_rel: np.ndarray, breath: np.ndarray, orb: np.ndarray) -> None:
        set_curve(self.breath_curve, t_rel, breath)
        set_curve(self.orb_curve, t_rel, orb)


def strap_text(p: PartnerState) -> str:
    """Rich text: connection, contact, battery, signal quality, breathing source (its
    confidence, whether the pacer trusts it, whether chest motion and heart rate disagree)."""
    word, color = _STATUS_TEXT.get(p.status, (p.status, style.INFO_COLOR))
    parts = [f'<span style="color:{color}; font-weight:700">\u25cf {word}</span>']

    if p.battery_pct is not None:
        low = p.battery_pct <= style.LOW_BATTERY_PCT
        bat = f"batt {p.battery_pct}%"
        parts.append(f'<span style="color:{style.WARN_COLOR}">{bat}</span>' if low else bat)
    if p.quality is not None:
        q_color = style.OK_COLOR if p.quality >= 0.6 else (
            style.WARN_COLOR if p.quality >= 0.3 else style.ALERT_COLOR)
        parts.append(f'signal <span style="color:{q_color}">{p.quality:.2f}</span>')
    if p.source:
        via = f"via {_SOURCE_TEXT.get(p.source, p.source)}"
        if p.confidence is not None:
            via += f" {p.confidence:.2f}"
        # trusted: its confidence has held the gate long enough for the pacer to follow it
        parts.append(f'{via} <span style="color:{style.OK_COLOR}">trusted</span>' if p.trusted
                     else f'{via} <span style="color:{style.WARN_COLOR}">not trusted</span>')
    if p.sources_disagree:
        parts.append(f'<span style="color:{style.WARN_COLOR}">chest motion and heart rate'
                     " disagree</span>")
    if p.alert is None:
        parts.append(f'<span style="color:{style.MUTED}">arousal unknown</span>')
    if p.talking:  # breathing, calm and synchrony now are those of speech
        parts.append(f'<span style="color:{style.INFO_COLOR}">talking</span>')
    text = " \u00b7 ".join(parts)
    if p.status_reason:  # why the strap is not ok: a line of its own
        text += f'<br><span style="color:{style.INFO_COLOR}">{html.escape(p.status_reason)}</span>'
    return text
