"""The therapist's controls: each one sends a :class:`Command` and returns at once.

Every command carries an id; the feedback line says "sent" until the session's
receipt for that id arrives (on a state), then "applied" or the refusal, or "no answer
from the room" after :data:`ANSWER_WAIT_S` (a broker's ACL drops a forbidden publish
silently). Controls the view may not use are disabled with a tooltip saying why.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from coach.types import Command, Receipt

log = logging.getLogger(__name__)

MARKERS: tuple[tuple[str, str, str], ...] = (
    ("rupture", "Rupture", "R"),
    ("repair", "Repair", "P"),
    ("touch", "Touch", "T"),
    ("eye contact", "Eye contact", "E"),
)
RATIOS: tuple[tuple[str, float], ...] = (
    ("4:6", 4 / 6), ("4:7", 4 / 7), ("4:8", 4 / 8), ("3:6", 3 / 6), ("1:1", 1.0),
)
PACE_MIN_BPM, PACE_MAX_BPM = 4.5, 20.0  # breaths per minute the pace box allows
STOP_CONFIRM_MS = 3000  # ms a first click on "Stop" waits for the second
ANSWER_WAIT_S = 3.0  # wall seconds a command waits for its receipt
REASON_TEXT = {"remote control off": "remote control is off",
               "session ended": "the session has ended",
               "rate limited": "too many commands (at most 5 a second)"}


class ControlPanel(QWidget):
    """Session, pacer and marker controls; ``send`` is ``session.command``."""

    def __init__(
        self,
        send: Callable[[Command], None],
        *,
        labels: tuple[str, ...] = ("A", "B"),
        on_start: Callable[[], None] | None = None,
        on_stop: Callable[[], None] | None = None,
        on_show_orb: Callable[[], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._send = send
        self._on_start, self._on_stop = on_start, on_stop
        self._on_show_orb = on_show_orb
        self._running = False
        self._confirming = False
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self._session_box())
        col.addWidget(self._pacer_box(labels))
        col.addWidget(self._marker_box())
        self.feedback = QLabel("")
        self.feedback.setObjectName("muted")
        self.feedback.setWordWrap(True)
        col.addWidget(self.feedback)
        self._tips = {w: w.toolTip() for w in self.command_widgets()}  # tooltips when enabled
        self._feedback_timer = QTimer(self, singleShot=True, interval=6000)
        self._feedback_timer.timeout.connect(lambda: self.feedback.setText(""))
        self._pending: dict[str, tuple[float, str, Command]] = {}  # id -> (sent at, text, it)
        self._now: Callable[[], float] = time.monotonic  # wall time: a person waits
        self._why_not = ""  # why the view may not send commands now ("" = it may)
        self._ended = False

    # ------------------------------------------------------------------ building
    def _session_box(self) -> QGroupBox:
        box = QGroupBox("Session")
        grid = QGridLayout(box)
        self.start_stop = QPushButton("Start session")
        self.start_stop.clicked.connect(self._start_stop_clicked)
        self.start_stop.setEnabled(self._on_start is not None)
        self.baseline = QPushButton("Record baseline")
        self.baseline.setToolTip("Take each partner's resting baseline now")
        self.baseline.clicked.connect(lambda: self.send(Command(kind="baseline")))
        grid.addWidget(self.start_stop, 0, 0)
        grid.addWidget(self.baseline, 0, 1)
        self.show_orb = QPushButton("Show the orb  [Ctrl+O]")
        self.show_orb.setToolTip("Open the couple's orb again, or bring it to the front")
        self.show_orb.setVisible(self._on_show_orb is not None)
        if self._on_show_orb is not None:
            self.show_orb.clicked.connect(self._on_show_orb)
            QShortcut(QKeySequence("Ctrl+O"), self, self._on_show_orb)
        grid.addWidget(self.show_orb, 1, 0, 1, 2)
        return box

    def _pacer_box(self, labels: tuple[str, ...]) -> QGroupBox:
        box = QGroupBox("Pacer")
        grid = QGridLayout(box)
        self.hold = QPushButton("Hold pace")
        self.hold.setCheckable(True)
        self.hold.setToolTip("Keep breathing at this rate: the orb stops moving toward "
                             "the anchor's pace")
        self.hold.toggled.connect(self._hold_toggled)
        self.pause = QPushButton("Pause")
        self.pause.setCheckable(True)
        self.pause.setToolTip("Space: the orb finishes this breath and rests, softly, at "
                              "the end of the exhale")
        self.pause.toggled.connect(self._pause_toggled)
        grid.addWidget(self.hold, 0, 0)
        grid.addWidget(self.pause, 0, 1)
        self.release = QPushButton("Release hold")
        self.release.setToolTip("Let the orb lead again although a partner's alert is set "
                                "or their strap was lost while alerting")
        self.release.clicked.connect(lambda: self.send(Command(kind="release-hold")))
        grid.addWidget(self.release, 0, 2)
        grid.addWidget(QLabel("Anchor"), 1, 0)
        grid.addWidget(self._anchor_buttons(labels), 1, 1, 1, 2)
        grid.addWidget(QLabel("Pace"), 2, 0)
        self.pace_auto = QCheckBox("auto")
        self.pace_auto.setChecked(True)
        self.pace_auto.toggled.connect(self._pace_auto_toggled)
        self.pace = QDoubleSpinBox()
        self.pace.setRange(PACE_MIN_BPM, PACE_MAX_BPM)
        self.pace.setSingleStep(0.5)
        self.pace.setDecimals(1)
        self.pace.setValue(6.0)
        self.pace.setSuffix(" /min")
        self.pace.setKeyboardTracking(False)  # one command per entered value
        self.pace.setEnabled(False)
        self.pace.valueChanged.connect(self._pace_changed)
        grid.addWidget(self.pace_auto, 2, 1)
        grid.addWidget(self.pace, 2, 2)
        grid.addWidget(QLabel("In : out"), 3, 0)
        self.ratio = QComboBox()
        for text, value in RATIOS:
            self.ratio.addItem(text, value)
        self.ratio.currentIndexChanged.connect(self._ratio_changed)
        grid.addWidget(self.ratio, 3, 1, 1, 2)
        self.guide = QCheckBox("Guide toward resonance (6/min)")
        self.guide.toggled.connect(lambda on: self.send(Command(kind="guide", value=on)))
        grid.addWidget(self.guide, 4, 0, 1, 3)
        QShortcut(QKeySequence(Qt.Key.Key_Space), self,
                  lambda: self.pause.toggle() if self.pause.isEnabled() else None)
        return box

    def _anchor_buttons(self, labels: tuple[str, ...]) -> QWidget:
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        self.anchor_group = QButtonGroup(self)
        self.anchor_buttons: dict[str | None, QPushButton] = {}
        for k, value in enumerate((None, *labels)):
            button = QPushButton("Auto" if value is None else value)
            button.setCheckable(True)
            self.anchor_group.addButton(button, k)
            self.anchor_buttons[value] = button
            row.addWidget(button)
        self.anchor_buttons[None].setChecked(True)
        self.anchor_group.idClicked.connect(self._anchor_clicked)
        return holder

    def _marker_box(self) -> QGroupBox:
        box = QGroupBox("Markers")
        grid = QGridLayout(box)
        self.marker_buttons: dict[str, QPushButton] = {}
        for k, (kind, text, key) in enumerate(MARKERS):
            button = QPushButton(f"{text}  [{key}]")
            button.clicked.connect(lambda _=False, kind=kind: self.mark(kind))
            QShortcut(QKeySequence(key), self, lambda kind=kind: self.mark(kind))
            grid.addWidget(button, k // 2, k % 2)
            self.marker_buttons[kind] = button
        self.note = QLineEdit()
        self.note.setPlaceholderText("Note  [Ctrl+N], Enter to mark")
        self.note.returnPressed.connect(lambda: self.mark("note"))
        QShortcut(QKeySequence("Ctrl+N"), self, self.note.setFocus)
        grid.addWidget(self.note, 2, 0, 1, 2)
        return box

    # ------------------------------------------------------------------ actions
    def send(self, cmd: Command) -> None:
        """Hand a command to the session; a refusal is shown, never raised into Qt."""
        cmd = replace(cmd, id=cmd.id or uuid.uuid4().hex[:12])
        try:
            self._send(cmd)
        except (ValueError, TypeError, RuntimeError) as exc:
            log.warning("command %s refused: %s", cmd, exc)
            self._say(f"Not sent ({describe(cmd)}): {REASON_TEXT.get(str(exc), exc)}")
            return
        self._pending[cmd.id] = (self._now(), describe(cmd), cmd)
        self._say(f"Sent: {describe(cmd)}")

    def take_receipts(self, receipts: Iterable[Receipt]) -> None:
        """Show the session's answer to commands this panel sent."""
        for receipt in receipts:
            for cmd_id in receipt.ids:
                sent = self._pending.pop(cmd_id, None)
                if sent is None:
                    continue
                if receipt.outcome == "applied":
                    self._say(f"Applied: {sent[1]}")
                else:
                    why = REASON_TEXT.get(receipt.reason, receipt.reason)
                    more = f" ({receipt.count} commands)" if receipt.count > 1 else ""
                    self._say(f"{sent[1]}: refused: {why}{more}")
                    self._undo(sent[2])

    def _undo(self, cmd: Command) -> None:
        """A refused switch goes back to what the session still does."""
        button = {"pause": self.pause, "resume": self.pause, "hold": self.hold,
                  "guide": self.guide}.get(cmd.kind)
        if button is None:
            return
        button.blockSignals(True)
        button.setChecked(cmd.kind == "resume" if cmd.kind in ("pause", "resume")
                          else not cmd.value)
        button.blockSignals(False)
        if button is self.pause:
            self.pause.setText("Resume" if self.pause.isChecked() else "Pause")

    def check_answers(self) -> None:
        """Commands unanswered for :data:`ANSWER_WAIT_S`: say so (call every frame)."""
        if not self._pending:
            return
        now = self._now()
        late = [k for k, (t, _, _) in self._pending.items() if now - t > ANSWER_WAIT_S]
        for k in late:
            _, what, _ = self._pending.pop(k)
            self._say(f"{what}: no answer from the room")

    def set_allowed(self, why_not: str) -> None:
        """Enable the session's commands, or disable them with ``why_not`` as tooltip."""
        why_not = why_not or ("the session has ended" if self._ended else "")
        if why_not == self._why_not:
            return
        self._why_not = why_not
        for w in self.command_widgets():
            w.setEnabled(not why_not)
            w.setToolTip(why_not or self._tips.get(w, ""))
        self.pace.setEnabled(not why_not and not self.pace_auto.isChecked())

    def command_widgets(self) -> list[QWidget]:
        """Every widget that sends a command to the session."""
        return [self.baseline, self.hold, self.pause, *self.anchor_buttons.values(),
                self.pace_auto,
                self.pace, self.ratio, self.guide, *self.marker_buttons.values(), self.note]

    def mark(self, kind: str) -> None:
        """A marker, carrying the note being typed (a bare note needs text)."""
        if self._why_not:  # a shortcut of a disabled control
            self._say(f"Not sent: {self._why_not}")
            return
        note = self.note.text().strip()
        if kind == "note" and not note:
            return
        self.send(Command(kind="marker", value=kind, note=note))
        self.note.clear()

    def _pause_toggled(self, paused: bool) -> None:
        self.pause.setText("Resume" if paused else "Pause")
        if paused:
            self.send(Command(kind="pause"))
        else:  # resume ends a hold too: say so on the button
            self.hold.blockSignals(True)
            self.hold.setChecked(False)
            self.hold.blockSignals(False)
            self.send(Command(kind="resume"))

    def _hold_toggled(self, held: bool) -> None:
        self.send(Command(kind="hold", value=held))

    def show_pacer(self, rate_bpm: float | None) -> None:
        """While the pace is automatic, the pace box shows the orb's rate (no command)."""
        if rate_bpm is not None and self.pace_auto.isChecked():
            self.pace.blockSignals(True)
            self.pace.setValue(round(rate_bpm * 2) / 2)
            self.pace.blockSignals(False)

    def _anchor_clicked(self, index: int) -> None:
        value = list(self.anchor_buttons)[index]
        self.send(Command(kind="anchor", value=value))

    def _pace_auto_toggled(self, auto: bool) -> None:
        self.pace.setEnabled(not auto)
        self.send(Command(kind="pace", value=None if auto else self.pace.value()))

    def _pace_changed(self, value: float) -> None:
        if not self.pace_auto.isChecked():
            self.send(Command(kind="pace", value=value))

    def _ratio_changed(self, index: int) -> None:
        text, value = RATIOS[index]
        self.send(Command(kind="ratio", value=value, note=text))

    def _start_stop_clicked(self) -> None:
        if not self._running:
            if self._on_start is not None:
                self._on_start()
            return
        if not self._confirming:  # a stray click must not end a session
            self._confirming = True
            self.start_stop.setText("Click again to stop")
            QTimer.singleShot(STOP_CONFIRM_MS, self._cancel_confirm)
            return
        self._confirming = False
        if self._on_stop is not None:
            self._on_stop()

    def _cancel_confirm(self) -> None:
        if self._confirming:
            self._confirming = False
            self.set_running(self._running)

    def set_running(self, running: bool, ended: bool = False) -> None:
        """Show whether the session runs (called by the app as it starts and stops).

        Once it has ended, every control is disabled.
        """
        self._running = running
        self.start_stop.setText("Stop session" if running else (
            "Session ended" if ended else "Start session"))
        can = (self._on_stop is not None) if running else (
            self._on_start is not None and not ended)
        self.start_stop.setEnabled(can)
        if not can and self._on_start is None and self._on_stop is None:
            self.start_stop.setToolTip("the room starts and stops its own session")
        if ended and not running:
            self._ended = True
            self._why_not = ""
            self.set_allowed("the session has ended")

    def _say(self, text: str) -> None:
        self.feedback.setText(text)
        self._feedback_timer.start()


def describe(cmd: Command) -> str:
    """A short human description of a command, for the feedback line."""
    if cmd.kind == "marker":
        return f"marker {cmd.value}" + (f" \u2013 \u201c{cmd.note}\u201d" if cmd.note else "")
    if cmd.kind == "pace":
        return "pace auto" if cmd.value is None else f"pace {cmd.value:.1f}/min"
    if cmd.kind == "anchor":
        return "anchor auto" if cmd.value is None else f"anchor {cmd.value}"
    if cmd.kind == "ratio":
        return f"in:out {cmd.note or cmd.value}"
    if cmd.kind == "guide":
        return "guide on" if cmd.value else "guide off"
    if cmd.kind == "hold":
        return "hold pace" if cmd.value else "release the held pace"
    if cmd.kind == "release-hold":
        return "hold released"
    return cmd.kind
