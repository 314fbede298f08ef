"""The session's trends: heart rate, breathing rate with the pacer, calm, synchrony.

Times on these plots are session minutes. Markers are vertical lines on every plot.
Synchrony is drawn only when the session publishes it (``state.extra["synchrony"]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QWidget

from coach.types import Marker
from ui import style
from ui.plotkit import add_curve, horizontal_line, make_plot, set_curve, title_legend
from ui.ring import Ring

SYNC_KEYS = ("breath_ppc", "hr_xcorr")
SYNC_NAMES = {"breath_ppc": "breath consistency", "hr_xcorr": "heart-rate corr."}


def trend_columns(labels: Iterable[str]) -> list[str]:
    cols = ["pacer_bpm", *SYNC_KEYS]
    for label in labels:
        cols += [f"hr_{label}", f"rate_{label}", f"calm_{label}"]
    return cols


class TrendPlots(QWidget):
    """Four plots over the whole session, fed from one ring buffer."""

    def __init__(self, labels: Iterable[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.labels = tuple(labels)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(6)
        x = ("session time", "min")
        self.hr = make_plot("Heart rate", "HR", "bpm", *x)
        self.rate = make_plot("Breathing rate and pacer", "rate", "breaths/min", *x)
        self.calm = make_plot("Calm (vs own baseline)", "calm", "0-1", *x, y_range=(0, 1))
        self.sync = make_plot("Synchrony", "sync", "0-1", *x, y_range=(-0.2, 1))
        self._across = 4 if len(self.labels) > 2 else 2  # three cards leave room for one row
        for k, w in enumerate((self.hr, self.rate, self.calm, self.sync)):
            grid.addWidget(w, k // self._across, k % self._across)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.pacer_curve = add_curve(self.rate, "pacer", style.PACER_COLOR,
                                     style.TREND_PEN_PX)
        for label in self.labels:
            self._add_partner(label)
        for key in SYNC_KEYS:
            self.curves[key] = add_curve(self.sync, SYNC_NAMES[key], style.SYNC_COLORS[key],
                                         style.TREND_PEN_PX)
        self._baselines: dict[str, pg.InfiniteLine] = {}
        self._no_sync = pg.TextItem("no synchrony data yet", color=style.MUTED,
                                    anchor=(0.5, 0.5))
        self._no_sync.setPos(0.5, 0.4)
        self.sync.addItem(self._no_sync)
        self._marker_lines: list[tuple[pg.PlotWidget, pg.InfiniteLine]] = []
        self._marker_count = 0
        self._retitle()

    def _retitle(self) -> None:
        """Titles with their legends (on the title line, never over the traces); when the
        four plots share one row, the legend alone (the axes name the figures)."""
        short = self._across == 4
        people = [(k, style.PARTNER_COLOR.get(k, style.TEXT), False) for k in self.labels]
        title_legend(self.hr, "" if short else "Heart rate", people)
        title_legend(self.rate, "" if short else "Breathing rate",
                     [("orb" if short else "pacer", style.PACER_COLOR, False), *people])
        title_legend(self.calm, "" if short else "Calm (vs own baseline)", people)
        title_legend(self.sync, "" if short else "Synchrony",
                     [(k.split("_")[0] if short else SYNC_NAMES[k], style.SYNC_COLORS[k], False)
                      for k in SYNC_KEYS])

    def _add_partner(self, label: str) -> None:
        color = style.PARTNER_COLOR.get(label, style.TEXT)
        width = style.TREND_PEN_PX
        self.curves[f"hr_{label}"] = add_curve(self.hr, label, color, width)
        self.curves[f"rate_{label}"] = add_curve(self.rate, label, color, width)
        self.curves[f"calm_{label}"] = add_curve(self.calm, label, color, width)

    def ensure_partner(self, label: str) -> None:
        """Curves for a partner seen for the first time (a therapist's strap joins)."""
        if label not in self.labels:
            self.labels = (*self.labels, label)
            self._add_partner(label)
            self._retitle()

    def plots(self) -> tuple[pg.PlotWidget, ...]:
        return (self.hr, self.rate, self.calm, self.sync)

    def render_ring(
        self, ring: Ring, t_origin_s: float, t_now_s: float, part: int | None = None
    ) -> None:
        """Redraw the curves of plot ``part`` (0-3; None: all) from the ring.

        Redrawing one plot per frame spreads the cost of a long session's trends over
        several frames, so the orb never misses one while they repaint.
        """
        minutes = (ring.t - t_origin_s) / 60.0
        chosen = self.plots() if part is None else (self.plots()[part],)
        for name, curve in (("pacer_bpm", self.pacer_curve), *self.curves.items()):
            if curve.getViewBox() in {w.getViewBox() for w in chosen} and name in ring.columns:
                set_curve(curve, minutes, ring.column(name))
        span = max(1.0, (t_now_s - t_origin_s) / 60.0)
        start = minutes[0] if len(minutes) else 0.0
        for w in chosen:
            w.setXRange(min(start, span - 1.0), span, padding=0.01)
        if self.sync in chosen:
            has_sync = bool(np.isfinite(ring.column("breath_ppc")).any()
                            or np.isfinite(ring.column("hr_xcorr")).any())
            self._no_sync.setVisible(not has_sync)

    def show_sync_baselines(self, sync: Mapping[str, Any]) -> None:
        """Dotted lines at each synchrony measure's chance level, when published."""
        for key in SYNC_KEYS:
            base = sync.get(f"{key}_chance")
            if not isinstance(base, int | float):
                continue
            line = self._baselines.get(key)
            if line is None:
                line = horizontal_line(self.sync, float(base), style.SYNC_COLORS[key])
                self._baselines[key] = line
            line.setValue(float(base))

    def add_marker(self, marker: Marker, t_origin_s: float) -> None:
        """A vertical line at the marker's time on every plot, labelled on the top one."""
        x = (marker.t_s - t_origin_s) / 60.0
        color = QColor(style.MARKER_COLOR)
        color.setAlphaF(0.7)
        pen = pg.mkPen(color, width=1)
        text = marker.kind  # notes are in the marker log; short labels cross less data
        for w in (self.hr, self.rate, self.calm, self.sync):
            label = text if w is self.rate else None
            opts = {"position": 0.04, "color": style.MARKER_COLOR, "movable": False,
                    "rotateAxis": (1, 0), "anchors": [(0, 0), (0, 0)]}
            line = pg.InfiniteLine(pos=x, angle=90, pen=pen, label=label, labelOpts=opts)
            w.addItem(line)
            self._marker_lines.append((w, line))
        self._marker_count += 1
        while len(self._marker_lines) > 4 * style.MAX_MARKER_LINES:
            w, old = self._marker_lines.pop(0)
            w.removeItem(old)

    def autoscale_hr(self, ring: Ring) -> None:
        """Heart-rate and breathing-rate axes fitted to what has been seen."""
        _fit(self.hr, [ring.column(f"hr_{k}") for k in self.labels], 50, 110, 5)
        rates = [ring.column(f"rate_{k}") for k in self.labels] + [ring.column("pacer_bpm")]
        _fit(self.rate, rates, 4, 16, 1)


def _fit(w: pg.PlotWidget, cols: list[np.ndarray], lo: float, hi: float, pad: float) -> None:
    values = np.concatenate(cols) if cols else np.array([])
    values = values[np.isfinite(values)]
    if len(values):
        lo = min(lo, float(values.min()) - pad)
        hi = max(hi, float(values.max()) + pad)
    w.setYRange(lo, hi, padding=0)
