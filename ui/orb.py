"""The couple's pacing orb: one calm, full-screen breathing light.

The orb's size is the pacer trajectory's fullness (``PacerState.level_at``) read at the
session clock's time on every frame, so it moves smoothly at the display's frame rate
although states arrive at 10 Hz. When a new trajectory starts a little off the old one
(a rate change between states), the difference fades out over ``ORB_BLEND_S`` rather
than showing as a jump. Faint rings can show each partner's own breath, so the couple
sees themselves come closer to the orb. Nothing clinical is drawn.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QFont,
    QKeyEvent,
    QLinearGradient,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QRadialGradient,
)
from PySide6.QtWidgets import QWidget

from coach.types import TWO_PI, PacerState, PartnerState, orb_level
from ui import style
from ui.view import ClockReader, SessionView

DEFAULT_FPS = 60.0
FRAME_LOG = 4096  # paint start times kept for frame-timing figures (over a minute)


@dataclass(slots=True)
class OrbFrame:
    """Everything one frame draws: fullness in [0, 1], words, partners' own levels."""

    level: float
    word: str = ""
    word_alpha: float = 0.0
    partners: Mapping[str, float] = field(default_factory=dict)
    word_scale: float = 1.0


class OrbAnimator:
    """Turns the latest trajectory and the clock's time into a smooth orb level."""

    def __init__(self, blend_s: float = style.ORB_BLEND_S) -> None:
        self.blend_s = blend_s
        self._pacer: PacerState | None = None
        self._offset = 0.0
        self._last_t: float | None = None
        self._last_level = style.ORB_REST_LEVEL
        self._partners: dict[str, float] = {}

    @staticmethod
    def target(pacer: PacerState | None, t_s: float) -> float:
        return style.ORB_REST_LEVEL if pacer is None else pacer.level_at(t_s)

    def level(self, pacer: PacerState | None, t_s: float) -> float:
        """The level to draw at ``t_s``: the trajectory's, plus a fading hand-over offset."""
        dt = 0.0 if self._last_t is None else max(0.0, t_s - self._last_t)
        self._offset *= math.exp(-dt / self.blend_s) if self.blend_s > 0 else 0.0
        if pacer is not self._pacer:
            # Carry over what the old trajectory would draw now: a new one never jumps.
            old = self.target(self._pacer, t_s) + self._offset
            self._offset = old - self.target(pacer, t_s)
            self._pacer = pacer
        self._last_t = t_s
        self._last_level = min(1.0, max(0.0, self.target(pacer, t_s) + self._offset))
        return self._last_level

    def partner_levels(
        self, partners: Mapping[str, PartnerState], inhale_fraction: float, dt_s: float
    ) -> dict[str, float]:
        """Each partner's own fullness, eased toward their latest 10 Hz value."""
        alpha = 1.0 - math.exp(-dt_s / style.PARTNER_EASE_S) if dt_s > 0 else 0.0
        seen: dict[str, float] = {}
        for label, p in partners.items():
            goal = partner_level(p, inhale_fraction)
            if goal is None:
                continue
            old = self._partners.get(label, goal)
            seen[label] = old + (goal - old) * alpha
        self._partners = seen
        return seen


def partner_level(p: PartnerState, inhale_fraction: float) -> float | None:
    """A partner's fullness in [0, 1] from their breath waveform, else their phase."""
    if p.status != "ok":
        return None
    if p.breath is not None and math.isfinite(p.breath):
        return min(1.0, max(0.0, 0.5 * (p.breath + 1.0)))
    if p.phase is not None:
        return orb_level(p.phase, inhale_fraction)
    return None


def breath_word(pacer: PacerState | None, t_s: float) -> tuple[str, float]:
    """"in" or "out" and its opacity, fading near each turn of the breath."""
    if pacer is None:
        return "", 0.0
    x = pacer.phase_at(t_s) / TWO_PI
    f = pacer.inhale_fraction
    word, u = ("in", x / f) if x < f else ("out", (x - f) / (1.0 - f))
    edge = 0.18  # share of each half-breath spent fading in or out
    alpha = min(1.0, u / edge, (1.0 - u) / edge)
    return word, max(0.0, alpha)


def radius_for_level(level: float, width: float, height: float) -> float:
    """Orb radius in pixels for a fullness in [0, 1] in a ``width`` x ``height`` area."""
    side = min(width, height)
    lo, hi = style.ORB_MIN_FRACTION * side, style.ORB_MAX_FRACTION * side
    return lo + (hi - lo) * min(1.0, max(0.0, level))


def paint_orb(
    p: QPainter, rect: QRectF, frame: OrbFrame, background: QPixmap | None = None
) -> float:
    """Draw one frame into ``rect``; return the orb radius drawn, in pixels.

    ``background``, if given, is a pre-rendered :func:`paint_background` of ``rect``.
    """
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    if background is not None:  # only where the painter is clipped to, in effect
        p.drawPixmap(rect.topLeft(), background)
    else:
        paint_background(p, rect)
    c = rect.center()
    r = radius_for_level(frame.level, rect.width(), rect.height())
    _paint_body(p, c, r, frame.level)
    for label, level in frame.partners.items():
        _paint_partner_ring(p, c, radius_for_level(level, rect.width(), rect.height()), label)
    if frame.word and frame.word_alpha > 0.01:
        _paint_word(p, rect, frame.word, frame.word_alpha, frame.word_scale)
    return r


def paint_background(p: QPainter, rect: QRectF) -> None:
    grad = QLinearGradient(rect.topLeft(), rect.bottomLeft())
    grad.setColorAt(0.0, QColor(style.ORB_BG_TOP))
    grad.setColorAt(1.0, QColor(style.ORB_BG_BOTTOM))
    p.fillRect(rect, grad)


def _paint_body(p: QPainter, c: QPointF, r: float, level: float) -> None:
    halo = QRadialGradient(c, r * 1.7)
    glow = QColor(style.ORB_HALO)
    glow.setAlphaF(0.20 + 0.15 * level)
    halo.setColorAt(0.45, glow)
    glow.setAlphaF(0.0)
    halo.setColorAt(1.0, glow)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(halo)
    p.drawEllipse(c, r * 1.7, r * 1.7)
    body = QRadialGradient(c, r, QPointF(c.x() - 0.25 * r, c.y() - 0.3 * r))
    core = QColor(style.ORB_CORE)
    core.setAlphaF(0.75 + 0.25 * level)
    body.setColorAt(0.0, core)
    body.setColorAt(0.45, QColor(style.ORB_MID))
    body.setColorAt(0.92, QColor(style.ORB_EDGE))
    edge = QColor(style.ORB_EDGE)
    edge.setAlphaF(0.0)
    body.setColorAt(1.0, edge)
    p.setBrush(body)
    p.drawEllipse(c, r, r)


def _paint_partner_ring(p: QPainter, c: QPointF, r: float, label: str) -> None:
    # one-pixel cosmetic circles, a second one beside it on a large screen: Qt's raster
    # engine strokes wider antialiased pens through a general stroker, 4x the cost
    color = QColor(style.ORB_PARTNER.get(label, "#ffffff"))
    color.setAlphaF(0.26)
    pen = QPen(color, 1.0)
    pen.setCosmetic(True)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    for dr in ((-0.45, 0.45) if r * 0.006 > 1.5 else (0.0,)):
        p.drawEllipse(c, r + dr, r + dr)


def _paint_word(p: QPainter, rect: QRectF, word: str, alpha: float, scale: float = 1.0) -> None:
    font = QFont()
    font.setPixelSize(max(12, int(min(rect.width(), rect.height()) * 0.045 * scale)))
    font.setWeight(QFont.Weight.Light)
    font.setLetterSpacing(QFont.SpacingType.PercentageSpacing, 115)
    p.setFont(font)
    color = QColor(style.ORB_WORDS)
    color.setAlphaF(0.55 * alpha)
    p.setPen(color)
    band_h = rect.height() * 0.08 * scale
    band = QRectF(rect.left(), rect.bottom() - band_h - rect.height() * 0.03, rect.width(),
                  band_h)
    p.drawText(band, Qt.AlignmentFlag.AlignCenter, word)


class OrbWindow(QWidget):
    """The orb, repainted at the display's frame rate from the session's latest state."""

    closed = Signal()

    def __init__(
        self,
        session: SessionView,
        *,
        show_words: bool = True,
        word_scale: float = 1.0,
        show_partners: bool = True,
        fps: float | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("coach - breathe together")
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self._session = session
        self._clock = ClockReader(session.clock)
        self.show_words = show_words
        self.word_scale = word_scale
        self.show_partners = show_partners
        self._animator = OrbAnimator()
        self._radius = 0.0
        self._level = style.ORB_REST_LEVEL
        self._last_paint_t: float | None = None
        self._bg: QPixmap | None = None
        self.frames = 0
        # perf_counter() at the start of each recent paint, and the wall time paints took:
        # what `coach bench` reads for late frames (cheap enough to keep always)
        self.paint_starts_s: deque[float] = deque(maxlen=FRAME_LOG)
        self.paint_busy_s = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._next_frame)
        self._extent = 0.0  # px from the centre that the last frame drew over
        self.paint_cpu_s = 0.0  # CPU time spent painting (what `coach bench` reports)
        self._fps = fps
        self._timer.start(self._interval_ms())

    def _interval_ms(self) -> int:
        fps = self._fps
        if fps is None:
            screen = self.screen()
            fps = screen.refreshRate() if screen is not None else DEFAULT_FPS
        return max(4, round(1000.0 / (fps if fps and fps > 1 else DEFAULT_FPS)))

    def current_radius(self) -> float:
        """The radius in pixels drawn by the last paint."""
        return self._radius

    def current_level(self) -> float:
        """The fullness in [0, 1] drawn by the last paint."""
        return self._level

    def frame_at(self, t_s: float) -> OrbFrame:
        """What to draw at session time ``t_s`` (advances the easing)."""
        state = self._session.states.latest
        pacer = state.pacer if state is not None else None
        level = self._animator.level(pacer, t_s)
        word, alpha = breath_word(pacer, t_s) if self.show_words else ("", 0.0)
        partners: dict[str, float] = {}
        if self.show_partners and state is not None:
            dt = 0.0 if self._last_paint_t is None else t_s - self._last_paint_t
            inhale = pacer.inhale_fraction if pacer is not None else 0.4
            couple = {k: v for k, v in state.partners.items() if k != "T"}
            partners = self._animator.partner_levels(couple, inhale, dt)
        self._last_paint_t = t_s
        return OrbFrame(level, word, alpha, partners, self.word_scale)

    @property
    def interval_ms(self) -> int:
        """The repaint timer's interval."""
        return self._timer.interval()

    def _next_frame(self) -> None:
        """Repaint only what the orb can reach by the next frame: the still background
        around it is left as it is (a full 1080p frame blit costs as much as the orb)."""
        if self._extent <= 0.0:
            self.update()
            return
        c = QRectF(self.rect()).center()
        reach = self._extent * 1.08 + 4.0  # the orb moves a few px a frame at most
        square = QRectF(c.x() - reach, c.y() - reach, 2 * reach, 2 * reach)
        h = self.height()
        band = QRectF(0, h * 0.85, self.width(), h * 0.15)  # where the words are
        self.update(square.united(band).toAlignedRect().intersected(self.rect()))

    def paintEvent(self, event: QPaintEvent) -> None:  # Qt override
        start = time.perf_counter()
        cpu0 = time.thread_time()
        self.paint_starts_s.append(start)
        frame = self.frame_at(self._clock.now())
        rect = QRectF(self.rect())
        painter = QPainter(self)
        try:
            self._radius = paint_orb(painter, rect, frame, self._background(rect))
        finally:
            painter.end()
        self._level = frame.level
        rings = [radius_for_level(v, rect.width(), rect.height()) for v in frame.partners.values()]
        self._extent = max([1.7 * self._radius, *rings]) + 2.0
        self.frames += 1
        self.paint_busy_s += time.perf_counter() - start
        self.paint_cpu_s += time.thread_time() - cpu0

    def closeEvent(self, event: QCloseEvent) -> None:  # Qt override
        self._timer.stop()
        self.closed.emit()
        super().closeEvent(event)

    def _background(self, rect: QRectF) -> QPixmap:
        """The full-window gradient, drawn once per size (a large share of a frame)."""
        if self._bg is None or self._bg.size() != rect.size().toSize():
            self._bg = QPixmap(rect.size().toSize())
            p = QPainter(self._bg)
            try:
                paint_background(p, QRectF(0, 0, rect.width(), rect.height()))
            finally:
                p.end()
        return self._bg

    def keyPressEvent(self, event: QKeyEvent) -> None:  # Qt override
        key = event.key()
        if key == Qt.Key.Key_F or key == Qt.Key.Key_F11:
            self.showNormal() if self.isFullScreen() else self.showFullScreen()
        elif key == Qt.Key.Key_Escape and self.isFullScreen():
            self.showNormal()
        else:
            super().keyPressEvent(event)

    def showEvent(self, event: object) -> None:  # Qt override
        self._timer.setInterval(self._interval_ms())  # the screen is known once shown
        self._set_cursor()
        super().showEvent(event)  # type: ignore[arg-type]

    def changeEvent(self, event: object) -> None:  # Qt override
        self._set_cursor()
        super().changeEvent(event)  # type: ignore[arg-type]

    def _set_cursor(self) -> None:
        shape = Qt.CursorShape.BlankCursor if self.isFullScreen() else Qt.CursorShape.ArrowCursor
        self.setCursor(shape)
