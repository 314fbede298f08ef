"""Every dashboard control sends the right Command to the session, without blocking."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import Qt

from coach.types import Command, Receipt
from ui.controls import RATIOS
from ui.dashboard import TherapistDashboard


@pytest.fixture
def dash(qtbot, stand_in) -> TherapistDashboard:
    w = TherapistDashboard(stand_in)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def _last(stand_in) -> Command:
    """The last command the session got, without its id (which every command has)."""
    assert stand_in.commands, "no command reached the session"
    cmd = stand_in.commands[-1]
    assert len(cmd.id) >= 8
    return dataclasses.replace(cmd, id="")


def test_pause_and_resume(dash, stand_in, qtbot) -> None:
    qtbot.mouseClick(dash.controls.pause, Qt.MouseButton.LeftButton)
    assert _last(stand_in) == Command(kind="pause")
    assert dash.controls.pause.text() == "Resume"
    qtbot.mouseClick(dash.controls.pause, Qt.MouseButton.LeftButton)
    assert _last(stand_in) == Command(kind="resume")


def test_hold_pace_is_not_pause(dash, stand_in, qtbot) -> None:
    qtbot.mouseClick(dash.controls.hold, Qt.MouseButton.LeftButton)
    assert _last(stand_in) == Command(kind="hold", value=True)
    qtbot.mouseClick(dash.controls.pause, Qt.MouseButton.LeftButton)
    assert _last(stand_in) == Command(kind="pause")
    qtbot.mouseClick(dash.controls.pause, Qt.MouseButton.LeftButton)  # resume ends both
    assert _last(stand_in) == Command(kind="resume")
    assert not dash.controls.hold.isChecked()


@pytest.mark.parametrize("value", ["A", "B", None])
def test_anchor(dash, stand_in, qtbot, value) -> None:
    if value is None:  # "Auto" is already checked: fix one first, then go back
        qtbot.mouseClick(dash.controls.anchor_buttons["A"], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dash.controls.anchor_buttons[value], Qt.MouseButton.LeftButton)
    assert _last(stand_in) == Command(kind="anchor", value=value)


def test_fixed_pace_then_auto(dash, stand_in, qtbot) -> None:
    c = dash.controls
    assert not c.pace.isEnabled()
    c.pace_auto.setChecked(False)
    assert _last(stand_in) == Command(kind="pace", value=6.0)
    assert c.pace.isEnabled()
    c.pace.setValue(8.5)
    assert _last(stand_in) == Command(kind="pace", value=8.5)
    c.pace.setValue(99.0)  # clamped to the pacer's bounds
    assert _last(stand_in) == Command(kind="pace", value=20.0)
    c.pace_auto.setChecked(True)
    assert _last(stand_in) == Command(kind="pace", value=None)


def test_ratio(dash, stand_in) -> None:
    names = [text for text, _ in RATIOS]
    dash.controls.ratio.setCurrentIndex(names.index("1:1"))
    assert _last(stand_in) == Command(kind="ratio", value=1.0, note="1:1")
    dash.controls.ratio.setCurrentIndex(names.index("4:7"))
    cmd = _last(stand_in)
    assert cmd.kind == "ratio" and cmd.value == pytest.approx(4 / 7)


def test_guide_and_baseline(dash, stand_in, qtbot) -> None:
    qtbot.mouseClick(dash.controls.guide, Qt.MouseButton.LeftButton)
    assert _last(stand_in) == Command(kind="guide", value=True)
    qtbot.mouseClick(dash.controls.baseline, Qt.MouseButton.LeftButton)
    assert _last(stand_in) == Command(kind="baseline")


def test_release_hold(dash, stand_in, qtbot) -> None:
    qtbot.mouseClick(dash.controls.release, Qt.MouseButton.LeftButton)
    assert _last(stand_in) == Command(kind="release-hold")
    assert "hold released" in dash.controls.feedback.text()


@pytest.mark.parametrize("kind", ["rupture", "repair", "touch", "eye contact"])
def test_marker_buttons(dash, stand_in, qtbot, kind) -> None:
    qtbot.mouseClick(dash.controls.marker_buttons[kind], Qt.MouseButton.LeftButton)
    assert _last(stand_in) == Command(kind="marker", value=kind, note="")


def test_marker_with_note_reaches_session(dash, stand_in, qtbot) -> None:
    c = dash.controls
    qtbot.keyClicks(c.note, "they held hands")
    qtbot.mouseClick(c.marker_buttons["touch"], Qt.MouseButton.LeftButton)
    assert _last(stand_in) == Command(kind="marker", value="touch", note="they held hands")
    assert c.note.text() == ""
    qtbot.keyClicks(c.note, "long silence")
    qtbot.keyClick(c.note, Qt.Key.Key_Return)
    assert _last(stand_in) == Command(kind="marker", value="note", note="long silence")
    n = len(stand_in.commands)
    qtbot.keyClick(c.note, Qt.Key.Key_Return)  # an empty note sends nothing
    assert len(stand_in.commands) == n


def test_keyboard_shortcuts(dash, stand_in, qtbot) -> None:
    dash.activateWindow()
    dash.controls.marker_buttons["repair"].setFocus()
    qtbot.keyClick(dash.controls.marker_buttons["repair"], Qt.Key.Key_R)
    assert _last(stand_in) == Command(kind="marker", value="rupture", note="")
    qtbot.keyClick(dash.controls.marker_buttons["repair"], Qt.Key.Key_E)
    assert _last(stand_in) == Command(kind="marker", value="eye contact", note="")
    # typing a note must not fire marker shortcuts
    n = len(stand_in.commands)
    qtbot.keyClicks(dash.controls.note, "Partner B retreats")
    assert len(stand_in.commands) == n


def test_refused_command_is_shown_not_raised(qtbot, stand_in) -> None:
    def refuse(cmd: Command) -> None:
        raise ValueError("pace out of range")

    stand_in.command = refuse
    w = TherapistDashboard(stand_in)
    qtbot.addWidget(w)
    w.controls.baseline.click()
    assert "pace out of range" in w.controls.feedback.text()


def test_start_and_two_click_stop(qtbot, stand_in) -> None:
    calls: list[str] = []
    w = TherapistDashboard(stand_in, on_start=lambda: calls.append("start"),
                           on_stop=lambda: calls.append("stop"))
    qtbot.addWidget(w)
    button = w.controls.start_stop
    button.click()
    assert calls == ["start"]
    w.set_running(True)
    button.click()  # a single stray click does not stop a session
    assert calls == ["start"] and "again" in button.text()
    button.click()
    assert calls == ["start", "stop"]
    w.set_running(False, ended=True)
    assert not button.isEnabled()
    # after Stop nothing can be sent: every control is disabled and says why
    for widget in w.controls.command_widgets():
        assert not widget.isEnabled()
        assert widget.toolTip() == "the session has ended"
    n = len(stand_in.commands)
    w.controls.mark("rupture")  # as the R shortcut would
    assert len(stand_in.commands) == n


def test_feedback_follows_the_receipt(dash, stand_in, make_state) -> None:
    """"Sent" until the session's receipt for that command's id, then what it says;
    "no answer" when none comes within 3 s."""
    c = dash.controls
    c.marker_buttons["repair"].click()
    first = stand_in.commands[-1]
    assert c.feedback.text() == "Sent: marker repair"
    other = Receipt("applied", "marker", ("someone-else",))
    stand_in.states.publish(make_state(101.0))
    stand_in.states.publish(dataclasses.replace(make_state(101.1), receipts=(other,)))
    dash.tick()
    assert c.feedback.text() == "Sent: marker repair"
    stand_in.states.publish(dataclasses.replace(
        make_state(101.2), receipts=(Receipt("applied", "marker", (first.id,)),)))
    dash.tick()
    assert c.feedback.text() == "Applied: marker repair"
    c.marker_buttons["touch"].click()
    second = stand_in.commands[-1]
    refusal = Receipt("refused", "marker", ("x", second.id), "rate limited", 40)
    stand_in.states.publish(dataclasses.replace(make_state(101.3), receipts=(refusal,)))
    dash.tick()
    assert c.feedback.text() == (
        "marker touch: refused: too many commands (at most 5 a second) (40 commands)")
    c.pace_auto.setChecked(False)  # no receipt ever comes
    sent_at = c._pending[stand_in.commands[-1].id][0]
    c._now = lambda: sent_at + 3.1
    dash.tick()
    assert c.feedback.text() == "pace 6.0/min: no answer from the room"
