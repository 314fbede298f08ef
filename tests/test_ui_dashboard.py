"""The dashboard renders states: alerts catch the eye, curves draw, markers log."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QImage

from coach.types import Marker, PacerState
from ui import style
from ui.alerts import state_alerts
from ui.dashboard import TherapistDashboard
from ui.header import _ratio_text

OUT = Path(__file__).resolve().parents[1] / "out"


@pytest.fixture
def dash(qtbot, stand_in) -> TherapistDashboard:
    w = TherapistDashboard(stand_in)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


def _feed(stand_in, make_state, seconds: float, **kw) -> None:
    """Publish 10 states a second with a breathing couple and a 6/min pacer."""
    import math

    t0 = stand_in.clock.now()
    pacer = PacerState(t0_s=t0, phase0=0.0, rate_bpm=6.0)
    for k in range(int(seconds * 10)):
        t = t0 + k * 0.1
        stand_in.clock.t = t
        breath = {"A": math.sin(2 * math.pi * t / 8), "B": math.sin(2 * math.pi * t / 5)}
        partners = {label: {"breath": b, **kw.get(label, {})} for label, b in breath.items()}
        stand_in.states.publish(make_state(t, pacer=pacer, partners=partners,
                                           extra=kw.get("extra")))


def _has_color(img: QImage, color: str, tol: int = 40, step: int = 2) -> bool:
    want = QColor(color)
    for y in range(0, img.height(), step):
        for x in range(0, img.width(), step):
            c = QColor(img.pixel(x, y))
            if (abs(c.red() - want.red()) + abs(c.green() - want.green())
                    + abs(c.blue() - want.blue())) < tol:
                return True
    return False


def test_lost_strap_alert_within_two_seconds(dash, stand_in, make_state, qtbot) -> None:
    _feed(stand_in, make_state, 1.0)
    qtbot.waitUntil(lambda: dash.states_seen >= 10, timeout=2000)
    assert "no alerts" in dash.alert_text()
    t = stand_in.clock.now() + 0.1
    stand_in.states.publish(make_state(t, partners={"A": {}, "B": {"status": "lost"}}))
    qtbot.waitUntil(lambda: "strap lost" in dash.alert_text(), timeout=2000)
    assert "Partner B" in dash.alert_text()
    assert style.ALERT_COLOR in dash.banner.styleSheet()
    assert "LOST" in dash.panels["B"].strap.text()
    assert "no heart-rate" not in dash.panels["B"].strap.text()
    reason = "attempt 2: no heart-rate service on this device"
    stand_in.states.publish(make_state(t + 0.1, partners={
        "A": {}, "B": {"status": "lost", "status_reason": reason}}))
    qtbot.waitUntil(lambda: reason in dash.panels["B"].strap.text(), timeout=2000)
    assert "LOST" in dash.panels["B"].strap.text()


def test_other_alerts(make_state) -> None:
    state = make_state(1.0, partners={"A": {"battery_pct": 9, "status": "no-contact"},
                                      "B": {}},
                       extra={"alerts": [{"label": "B", "kind": "arousal rising"}]})
    texts = [a.text for a in state_alerts(state)]
    assert any("no skin contact" in t for t in texts)
    assert any("low battery 9%" in t for t in texts)
    assert any("B: arousal rising" in t for t in texts)
    assert state_alerts(state)[-1].severity == "warn"  # most severe first


def test_curves_and_numbers(dash, stand_in, make_state, qtbot) -> None:
    _feed(stand_in, make_state, 20.0, A={"hr_bpm": 64.0, "rate_bpm": 7.5})
    qtbot.waitUntil(lambda: dash.states_seen >= 200, timeout=3000)
    x, _ = dash.panels["A"].breath_curve.getData()
    assert x is not None and len(x) == 200
    assert x[-1] == pytest.approx(0.0) and x[0] == pytest.approx(-19.9)
    assert dash.panels["A"].hr.text() == "64 bpm"
    assert dash.panels["A"].rate.text() == "7.5 /min"
    assert "ANCHOR" in dash.panels["A"].badge.text()
    assert "6.0" in dash.header.pacer.text() and "4:6" in dash.header.pacer.text()
    qtbot.wait(100)
    OUT.mkdir(exist_ok=True)
    img = dash.grab().toImage()
    img.save(str(OUT / "test_dashboard.png"))
    plot = dash.panels["A"].plot.grab().toImage()
    assert _has_color(plot, style.PARTNER_COLOR["A"])  # the breathing curve is drawn
    assert _has_color(plot, style.PACER_COLOR)  # and the orb over it
    assert _has_color(dash.panels["B"].plot.grab().toImage(), style.PARTNER_COLOR["B"])


def test_markers_are_logged_and_drawn(dash, stand_in, make_state, qtbot) -> None:
    t = stand_in.clock.now()
    marks = (Marker(t, "rupture", "raised voices"), Marker(t, "repair"))
    stand_in.states.publish(make_state(t + 0.1, markers=marks))
    qtbot.waitUntil(lambda: dash.marker_log.count() == 2, timeout=2000)
    assert "repair" in dash.marker_log.item(0).text()
    assert "rupture \u2013 raised voices" in dash.marker_log.item(1).text()


def test_synchrony_when_present_and_absent(dash, stand_in, make_state, qtbot) -> None:
    _feed(stand_in, make_state, 2.0)
    qtbot.waitUntil(lambda: dash.states_seen >= 20, timeout=2000)
    assert dash.header.sync.text() == ""
    assert dash.trends._no_sync.isVisible()
    sync = {"breath_ppc": 0.6, "breath_ppc_chance": 0.3, "hr_xcorr": 0.2, "orb_follows": "A",
            "session": {"synchrony_beyond_chance_percent": 40.0, "windows": 10}}
    _feed(stand_in, make_state, 2.0, extra={"synchrony": sync})
    qtbot.waitUntil(lambda: dash.states_seen >= 40, timeout=2000)
    text = dash.header.sync.text()
    assert "Breath sync <b>0.60</b> (beyond chance: 0.30)" in text
    assert "time synchronous beyond chance <b>40 %</b>" in text
    assert "the orb follows A" in text
    # trend plots redraw one per frame: the synchrony plot follows within a few frames
    qtbot.waitUntil(lambda: not dash.trends._no_sync.isVisible(), timeout=2000)


def test_therapist_strap_appears(dash, stand_in, make_state, qtbot) -> None:
    state = make_state(stand_in.clock.now(), partners={"A": {}, "B": {}, "T": {"hr_bpm": 58}})
    stand_in.states.publish(state)
    qtbot.waitUntil(lambda: "T" in dash.panels, timeout=2000)
    assert dash.panels["T"].hr.text() == "58 bpm"


def test_unknown_values_render_as_dashes(dash, stand_in, make_state, qtbot) -> None:
    none = {"rate_bpm": None, "phase": None, "breath": None, "hr_bpm": None, "calm": None,
            "rmssd_ms": None, "quality": None, "source": None, "battery_pct": None,
            "status": "connecting"}
    stand_in.states.publish(make_state(stand_in.clock.now(), anchor=None,
                                       partners={"A": none, "B": none}))
    qtbot.waitUntil(lambda: dash.states_seen == 1, timeout=2000)
    assert dash.panels["A"].hr.text() == "\u2013"
    assert "connecting" in dash.panels["A"].strap.text()
    assert "waiting" in dash.header.pacer.text()


def test_card_shows_which_breathing_source_is_trusted(dash, stand_in, make_state,
                                                     qtbot) -> None:
    a = {"source": "ecg", "confidence": 0.71, "trusted": True, "sources_disagree": True}
    b = {"source": "acc", "confidence": 0.2, "trusted": False}
    stand_in.states.publish(make_state(stand_in.clock.now(), partners={"A": a, "B": b}))
    qtbot.waitUntil(lambda: dash.states_seen == 1, timeout=2000)
    text_a, text_b = dash.panels["A"].strap.text(), dash.panels["B"].strap.text()
    assert "via ECG 0.71" in text_a and "not trusted" not in text_a and "trusted" in text_a
    assert "disagree" in text_a
    assert "via ACC 0.20" in text_b and "not trusted" in text_b and "disagree" not in text_b


def test_card_says_when_a_partner_is_talking(dash, stand_in, make_state, qtbot) -> None:
    a, b = {"talking": True}, {"talking": False}
    stand_in.states.publish(make_state(stand_in.clock.now(), partners={"A": a, "B": b}))
    qtbot.waitUntil(lambda: dash.states_seen == 1, timeout=2000)
    assert "talking" in dash.panels["A"].strap.text()
    assert "talking" not in dash.panels["B"].strap.text()


@pytest.mark.parametrize(("ratio", "text"), [(4 / 6, "4:6"), (1.0, "1:1"), (4 / 7, "4:7"),
                                             (0.5, "4:8")])
def test_ratio_text(ratio, text) -> None:
    assert _ratio_text(ratio) == text


def test_anchor_hand_over_is_shown(dash, stand_in, make_state, qtbot) -> None:
    t = stand_in.clock.now()
    stand_in.states.publish(make_state(t, anchor="B", extra={"anchor_handover": "A -> B"}))
    qtbot.waitUntil(lambda: "handed over A -> B" in dash.header.anchor.text(), timeout=2000)
    stand_in.states.publish(make_state(t + 0.1, anchor="A", extra={"anchor_handover": "A -> B"}))
    qtbot.waitUntil(lambda: "handed over" not in dash.header.anchor.text(), timeout=2000)


def test_header_words_match_what_the_orb_does(qtbot, stand_in, make_state) -> None:
    """During the baseline the header says it listens (not "following the anchor",
    not HOLDING); a fixed pace shows its target and when the orb reaches it at the
    slew limit of 1 breath/min per minute; a pause says the orb rests."""
    from coach.types import PacerState
    from ui.dashboard import TherapistDashboard

    dash = TherapistDashboard(stand_in)
    qtbot.addWidget(dash)
    t0 = stand_in.clock.now()
    follow = PacerState(t0, 0.0, 10.3, holding=True, mode="follow")
    stand_in.states.publish(make_state(t0 + 48.0, pacer=follow, anchor=None,
                                       extra={"baseline_left_s": 72.0}))
    dash.tick()
    assert "listening: baseline 1:12 left" in dash.header.pacer.text()
    assert "following" not in dash.header.pacer.text()
    assert dash.header.holding.text() == ""
    fixed = PacerState(t0, 0.0, 10.3, mode="manual", target_bpm=5.0)
    stand_in.states.publish(make_state(t0 + 200.0, pacer=fixed))
    dash.tick()
    assert "fixed pace 5.0 /min, there in 5:18" in dash.header.pacer.text()
    assert dash.controls.pace.value() == 10.5  # the box shows the orb's pace while auto
    paused = PacerState(t0, 0.0, 10.3, holding=True, mode="paused")
    stand_in.states.publish(make_state(t0 + 201.0, pacer=paused))
    dash.tick()
    assert "resting after the exhale" in dash.header.pacer.text()
    assert dash.header.holding.text() == " PAUSED "


def test_a_stalled_local_pipeline_greys_the_dashboard(qtbot, stand_in, make_state) -> None:
    """Locally too: states stop for 3 s of wall time while the session runs -> "no
    data from the session since HH:MM:SS", values dashed, controls disabled; the next
    state brings everything back."""
    from ui.dashboard import TherapistDashboard
    from ui.liveness import LivenessWatch

    wall = [1000.0]
    dash = TherapistDashboard(stand_in)
    qtbot.addWidget(dash)
    dash.watch = LivenessWatch(stand_in, now=lambda: wall[0])
    dash.set_running(True)
    stand_in.states.publish(make_state(101.0))
    dash.tick()
    assert dash.liveness.live and dash.panels["A"].hr.text() == "70 bpm"
    wall[0] += 2.9
    dash.tick()
    assert dash.liveness.live
    wall[0] += 0.2
    dash.tick()
    assert not dash.liveness.live
    assert "no data from the session since" in dash.alert_text()
    assert dash.panels["A"].hr.text() == "\u2013" and "no data" in dash.panels["A"].strap.text()
    assert "clock stopped" in dash.header.run_state.text()
    assert not dash.controls.marker_buttons["rupture"].isEnabled()
    stand_in.states.publish(make_state(104.0))
    dash.tick()
    assert dash.liveness.live and dash.panels["A"].hr.text() == "70 bpm"
    assert dash.controls.marker_buttons["rupture"].isEnabled()
    assert dash.header.run_state.text() == "running"
