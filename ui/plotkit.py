"""Plot widgets made once, styled alike, and fed with ``setData`` only."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont

from ui import style

pg.setConfigOptions(antialias=True)


def make_plot(
    title: str,
    y_label: str,
    y_units: str,
    x_label: str,
    x_units: str,
    y_range: tuple[float, float] | None = None,
) -> pg.PlotWidget:
    """A dark plot with labelled axes (units shown, never SI-scaled) and a grid."""
    w = pg.PlotWidget(background=style.PANEL)
    item = w.getPlotItem()
    item.setTitle(title, color=style.TEXT, size="11pt")
    axis_font = QFont()
    axis_font.setPixelSize(11)
    for name, label, units in (("left", y_label, y_units), ("bottom", x_label, x_units)):
        axis = item.getAxis(name)
        axis.enableAutoSIPrefix(False)
        axis.setPen(pg.mkPen(style.PANEL_EDGE))
        axis.setTextPen(pg.mkPen(style.MUTED))
        axis.setTickFont(axis_font)
        axis.setLabel(label, units=units, color=style.MUTED, **{"font-size": "10pt"})
    item.showGrid(x=True, y=True, alpha=style.GRID_ALPHA)
    item.setMenuEnabled(False)
    item.hideButtons()
    w.setMouseEnabled(x=False, y=False)
    if y_range is not None:
        item.setYRange(*y_range, padding=0.02)
    else:
        item.enableAutoRange(axis="y")
    w.setMinimumHeight(80)
    return w


def add_curve(
    w: pg.PlotWidget,
    name: str,
    color: str,
    width: float = 1.6,
    dashed: bool = False,
) -> pg.PlotDataItem:
    """A curve made once; it skips non-finite points (unknown values leave a gap)."""
    pen = pg.mkPen(color, width=width)
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    curve = w.plot([], [], pen=pen, name=name, connect="finite")
    curve.setDownsampling(auto=True, method="peak")
    curve.setClipToView(True)
    return curve


_SOLID, _DASHED = "\u2501\u2501", "\u2505\u2505"  # line samples in a legend


def title_legend(w: pg.PlotWidget, title: str, entries: list[tuple[str, str, bool]]) -> None:
    """The plot's title followed by its legend (name, colour, dashed), on the title line:
    a legend inside the plot would hide the oldest seconds of every trace."""
    keys = " ".join(
        f'<span style="color:{color}">{_DASHED if dashed else _SOLID}</span>'
        f'<span style="color:{style.MUTED}">&nbsp;{name}</span>&nbsp;&nbsp;'
        for name, color, dashed in entries
    )
    head = f'<span style="color:{style.TEXT}">{title}</span>&nbsp;&nbsp;&nbsp;' if title else ""
    w.getPlotItem().setTitle(f'<span style="font-size:9pt">{head}{keys}</span>')


def set_curve(curve: pg.PlotDataItem, x: np.ndarray, y: np.ndarray) -> None:
    """Feed a curve (views straight from a ring buffer; non-finite values make gaps)."""
    curve.setData(x, y, skipFiniteCheck=True)


def horizontal_line(w: pg.PlotWidget, y: float, color: str) -> pg.InfiniteLine:
    pen = pg.mkPen(color, width=1, style=Qt.PenStyle.DotLine)
    line = pg.InfiniteLine(pos=y, angle=0, pen=pen, movable=False)
    w.addItem(line)
    return line
