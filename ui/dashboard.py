"""The therapist's dashboard: both partners, the couple's trends, alerts and controls.

A ``QTimer`` drains the session's state subscription (a bounded queue that drops the
oldest when this window falls behind), appends every state to fixed-size ring buffers,
and redraws the plots with ``setData``. Nothing here awaits, parses or filters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QLabel,
    QListWidget,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from coach.types import LABELS, Marker, SessionState
from ui import style
from ui.alerts import Alert, state_alerts
from ui.controls import ControlPanel
from ui.header import Header
from ui.liveness import Liveness, LivenessWatch
from ui.partner import PartnerPanel
from ui.ring import Ring
from ui.trends import SYNC_KEYS, TrendPlots, trend_columns
from ui.view import SessionView

log = logging.getLogger(__name__)

_BANNER = {"alert": style.ALERT_COLOR, "warn": style.WARN_COLOR, "info": "#334155"}


class TherapistDashboard(QMainWindow):
    """Live view of a session with its controls; ``closed`` fires when it is closed."""

    closed = Signal()

    def __init__(
        self,
        session: SessionView,
        *,
        labels: tuple[str, ...] = ("A", "B"),
        on_start: Callable[[], None] | None = None,
        on_stop: Callable[[], None] | None = None,
        on_show_orb: Callable[[], None] | None = None,
        fps: float = style.DASHBOARD_FPS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("coach - therapist dashboard")
        self.setStyleSheet(style.STYLE_SHEET)
        self.session = session
        self._sub = session.states.subscribe(maxsize=256)
        self.latest: SessionState | None = session.states.latest
        self.wave = Ring(style.WAVE_CAPACITY, [*(f"breath_{k}" for k in LABELS), "orb"])
        self.trend = Ring(style.TREND_CAPACITY, trend_columns(LABELS))
        self.panels: dict[str, PartnerPanel] = {}
        self.controls = ControlPanel(session.command, labels=labels,
                                     on_start=on_start, on_stop=on_stop,
                                     on_show_orb=on_show_orb)
        self.watch = LivenessWatch(session)
        self.liveness = Liveness(True)
        self._running, self._ended = False, False
        self._build(labels)
        self.states_seen = 0
        self.refresh_cpu_s = 0.0  # CPU time spent in tick() (painting comes later, apart)
        self._last_fit_t: float | None = None
        self._trend_dirty = False
        self._trend_parts: list[int] = []  # trend plots still to redraw, one per frame
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.tick)
        self._timer.start(max(10, round(1000 / fps)))
        avail = self.screen().availableGeometry()  # never larger than the screen
        self.resize(min(1280, avail.width()), min(800, avail.height()))

    # ------------------------------------------------------------------ layout
    def _build(self, labels: tuple[str, ...]) -> None:
        left = QWidget()
        col = QVBoxLayout(left)
        col.setContentsMargins(8, 8, 4, 8)
        col.setSpacing(6)
        self.header = Header()
        col.addWidget(self.header)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setMinimumHeight(30)
        col.addWidget(self.banner)
        self._show_alerts([])
        partners = QWidget()
        self.partner_box = QVBoxLayout(partners)
        self.partner_box.setContentsMargins(0, 0, 0, 0)
        self.partner_box.setSpacing(6)
        for label in labels:
            self._ensure_panel(label)
        self.trends = TrendPlots(labels)
        split = QSplitter(Qt.Orientation.Vertical)  # the therapist may trade the heights
        split.addWidget(partners)
        split.addWidget(self.trends)
        split.setStretchFactor(0, 9)
        split.setStretchFactor(1, 10)
        split.setChildrenCollapsible(False)
        col.addWidget(split, 1)
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(left)
        body.addWidget(self._side())
        body.setStretchFactor(0, 1)
        body.setStretchFactor(1, 0)
        body.setCollapsible(0, False)
        self.setCentralWidget(body)

    def _side(self) -> QWidget:
        side = QWidget()
        side.setObjectName("side")
        col = QVBoxLayout(side)
        col.setContentsMargins(4, 8, 8, 8)
        col.addWidget(self.controls)
        title = QLabel("Marker log")
        title.setObjectName("muted")
        col.addWidget(title)
        self.marker_log = QListWidget()
        self.marker_log.setMinimumHeight(80)
        col.addWidget(self.marker_log, 1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(330)
        scroll.setMaximumWidth(420)
        return scroll

    def _ensure_panel(self, label: str) -> PartnerPanel:
        panel = self.panels.get(label)
        if panel is None:
            panel = PartnerPanel(label)
            self.panels[label] = panel
            self.partner_box.addWidget(panel)
        return panel

    # ------------------------------------------------------------------ the frame
    def tick(self) -> None:
        """Take every state published since the last frame, then redraw once."""
        cpu0 = time.thread_time()
        fresh: list[SessionState] = []
        while (state := self._sub.get_nowait()) is not None:
            fresh.append(state)
        if fresh:
            for state in fresh:
                self._ingest(state)
                if state.receipts:
                    self.controls.take_receipts(state.receipts)
            self.watch.saw_state()
            self.latest = fresh[-1]
            self._render(fresh[-1])
        elif self._trend_parts and self.latest is not None:  # finish the trend redraw
            self._render_trends(self.latest, self.session.t_origin_s, self._trend_parts.pop(0))
        self._check_liveness()
        self.controls.check_answers()
        self.refresh_cpu_s += time.thread_time() - cpu0

    def _check_liveness(self) -> None:
        live = self.watch.check(self._running, self._ended)
        if live == self.liveness:
            return
        self.liveness = live
        self.controls.set_allowed(live.why_not)
        if live.live:
            if self.latest is not None:
                self._render(self.latest)  # un-grey
            return
        self.header.set_stale(live.word)
        for panel in self.panels.values():
            panel.set_stale(live.word)
        self._set_banner(f"\u26a0  {live.text}", style.WARN_COLOR, "#111111")

    def _ingest(self, state: SessionState) -> None:
        self.states_seen += 1
        pacer = state.pacer
        orb = 2.0 * pacer.level_at(state.t_s) - 1.0 if pacer is not None else None
        parts = state.partners
        breaths = [parts[k].breath if k in parts else None for k in LABELS]
        self.wave.append(state.t_s, [*breaths, orb])
        last = self.trend.last_t
        if last is None or state.t_s - last >= style.TREND_STEP_S or state.t_s < last:
            self.trend.append(state.t_s, self._trend_row(state))
            self._trend_dirty = True
        for marker in state.markers:
            self._add_marker(marker)

    def _trend_row(self, state: SessionState) -> list[float | None]:
        sync = state.extra.get("synchrony")
        sync = sync if isinstance(sync, dict) else {}
        row: list[float | None] = [state.pacer.rate_bpm if state.pacer else None]
        row += [_number(sync.get(k)) for k in SYNC_KEYS]
        for label in LABELS:
            p = state.partners.get(label)
            row += [None, None, None] if p is None else [p.hr_bpm, p.rate_bpm, p.calm]
        return row

    def _add_marker(self, marker: Marker) -> None:
        origin = self.session.t_origin_s
        self.trends.add_marker(marker, origin)
        when = clock_text(marker.t_s - origin)
        text = f"{when}  {marker.kind}" + (f" \u2013 {marker.note}" if marker.note else "")
        self.marker_log.insertItem(0, text)

    def _render(self, state: SessionState) -> None:
        if not self.liveness.live:
            return  # greyed until data comes again (see _check_liveness)
        origin = self.session.t_origin_s
        alerts = state_alerts(state)
        alerting = {a.label for a in alerts if a.severity == "alert" and a.label}
        t_rel = self.wave.t - state.t_s
        orb = self.wave.column("orb")
        for label, p in sorted(state.partners.items()):
            if label not in self.panels:
                self._ensure_panel(label)
                self.trends.ensure_partner(label)
            panel = self.panels[label]
            panel.show_state(p, state.anchor, label in alerting)
            panel.show_wave(t_rel, self.wave.column(f"breath_{label}"), orb)
        if self._trend_dirty:  # trends move at 2 Hz: redraw them only then, a plot a frame
            self._trend_dirty = False
            self._trend_parts = [0, 1, 2, 3]
        if self._trend_parts:
            self._render_trends(state, origin, self._trend_parts.pop(0))
        self.header.show_state(state, origin)
        self.controls.show_pacer(state.pacer.rate_bpm if state.pacer is not None else None)
        self._show_alerts(alerts)

    def _render_trends(self, state: SessionState, origin: float, part: int) -> None:
        self.trends.render_ring(self.trend, origin, state.t_s, part)
        sync = state.extra.get("synchrony")
        if isinstance(sync, dict):
            self.trends.show_sync_baselines(sync)
        if self._last_fit_t is None or abs(state.t_s - self._last_fit_t) >= 1.0:
            self.trends.autoscale_hr(self.trend)
            self._last_fit_t = state.t_s

    def _show_alerts(self, alerts: list[Alert]) -> None:
        if not self.liveness.live:
            return  # the banner says there is no current data
        if not alerts:
            text, color, fg = "\u2713 All straps connected, no alerts", style.PANEL, style.OK_COLOR
        else:
            text = "   \u2022   ".join(a.text for a in alerts)
            color, fg = _BANNER[alerts[0].severity], "#ffffff"
            text = ("\u26a0  " if alerts[0].severity != "info" else "") + text
        self._set_banner(text, color, fg)

    def _set_banner(self, text: str, color: str, fg: str) -> None:
        if text != self.banner.text():
            self.banner.setText(text)
            self.banner.setStyleSheet(
                f"background: {color}; color: {fg}; border-radius: 6px; padding: 5px 10px;"
                f" font-size: 15px; font-weight: 700;")

    def alert_text(self) -> str:
        """What the alert banner says now."""
        return self.banner.text()

    def set_running(self, running: bool, ended: bool = False) -> None:
        self._running, self._ended = running, ended and not running
        self.controls.set_running(running, ended)
        self.header.set_running(running, ended)

    def closeEvent(self, event: QCloseEvent) -> None:  # Qt override
        self._timer.stop()
        self._sub.close()
        self.closed.emit()
        super().closeEvent(event)


def _number(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and np.isfinite(x) else None


def clock_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"
