"""The orb follows the pacer trajectory smoothly, and renders something calm."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from coach.types import TWO_PI, PacerState
from ui.orb import OrbAnimator, OrbFrame, OrbWindow, breath_word, paint_orb, radius_for_level

OUT = Path(__file__).resolve().parents[1] / "out"


def _render(orb: OrbWindow) -> QImage:
    img = QImage(orb.size(), QImage.Format.Format_RGB32)
    orb.render(img)  # runs paintEvent synchronously
    return img


@pytest.fixture
def orb(qtbot, stand_in) -> OrbWindow:
    w = OrbWindow(stand_in, fps=60)
    qtbot.addWidget(w)
    w.resize(800, 600)
    return w


def test_radius_follows_trajectory(orb, stand_in, make_state) -> None:
    t0 = stand_in.clock.now()
    pacer = PacerState(t0_s=t0, phase0=0.0, rate_bpm=6.0)
    stand_in.states.publish(make_state(t0, pacer=pacer))
    _render(orb)  # the first paint hands over from the resting orb
    stand_in.clock.advance(2.0)  # the hand-over offset has faded by now
    for dt in (0.0, 0.7, 1.9, 3.3, 4.0, 6.1, 8.8):
        stand_in.clock.t = t0 + 2.0 + dt
        _render(orb)
        want = radius_for_level(pacer.level_at(stand_in.clock.t), 800, 600)
        assert orb.current_radius() == pytest.approx(want, abs=0.5)
    # a full orb at the end of the inhale (4 s of a 10 s, 4:6 breath), empty at 0
    stand_in.clock.t = t0 + 10.0 + 4.0
    _render(orb)
    assert orb.current_level() == pytest.approx(1.0, abs=1e-3)
    stand_in.clock.t = t0 + 20.0
    _render(orb)
    assert orb.current_level() == pytest.approx(0.0, abs=1e-3)


def test_rate_change_has_no_jump(orb, stand_in, make_state) -> None:
    t0 = stand_in.clock.now()
    slow = PacerState(t0_s=t0, phase0=0.5, rate_bpm=6.0)
    stand_in.states.publish(make_state(t0, pacer=slow))
    frame_s = 1 / 60
    radii = []
    current = slow
    for k in range(1, 60 * 8):
        t = t0 + k * frame_s
        stand_in.clock.t = t
        if k % 6 == 0:  # a new state every 0.1 s; at 3 s the rate steps from 6 to 9/min
            rate = 9.0 if t - t0 >= 3.0 else 6.0
            phase = current.phase_at(t)
            if rate != current.rate_bpm:
                phase = (phase + 0.05) % TWO_PI  # starts a little off, as a slewing pacer may
            current = PacerState(t0_s=t, phase0=phase, rate_bpm=rate)
            stand_in.states.publish(make_state(t, pacer=current))
        _render(orb)
        radii.append(orb.current_radius())
    steps = [abs(b - a) for a, b in itertools.pairwise(radii)]
    # at 60 fps a 9/min breath moves at most ~pi/2 * range * rate_hz / f_in per frame
    assert max(steps) < 8.0
    latest = stand_in.states.latest.pacer
    want = radius_for_level(latest.level_at(stand_in.clock.t), 800, 600)
    assert orb.current_radius() == pytest.approx(want, abs=0.5)


def test_animator_blends_offset_away() -> None:
    anim = OrbAnimator(blend_s=0.3)
    a = PacerState(t0_s=0.0, phase0=0.0, rate_bpm=6.0)
    b = PacerState(t0_s=1.0, phase0=(a.phase_at(1.0) + 0.4), rate_bpm=6.0)
    before = anim.level(a, 1.0)
    assert anim.level(b, 1.0) == pytest.approx(before)  # no jump at hand-over
    assert anim.level(b, 3.0) == pytest.approx(b.level_at(3.0), abs=1e-3)


def test_words_follow_inhale_and_exhale() -> None:
    pacer = PacerState(t0_s=0.0, phase0=0.0, rate_bpm=6.0)  # 4 s in, 6 s out
    assert breath_word(pacer, 2.0) == ("in", 1.0)
    assert breath_word(pacer, 7.0)[0] == "out"
    assert breath_word(pacer, 4.0)[1] == pytest.approx(0.0, abs=1e-6)
    assert breath_word(None, 1.0) == ("", 0.0)


def test_partner_rings_and_pixels(orb, stand_in, make_state) -> None:
    t0 = stand_in.clock.now()
    pacer = PacerState(t0_s=t0, phase0=1.2, rate_bpm=6.0)
    state = make_state(t0, pacer=pacer, partners={"A": {"breath": 0.8}, "B": {"breath": -0.4}})
    stand_in.states.publish(state)
    _render(orb)
    frame = orb.frame_at(t0 + 2.0)
    assert set(frame.partners) == {"A", "B"}
    assert frame.partners["A"] > frame.partners["B"]
    img = _render(orb)
    OUT.mkdir(exist_ok=True)
    img.save(str(OUT / "test_orb.png"))
    centre = QColor(img.pixel(400, 300))
    corner = QColor(img.pixel(5, 5))
    assert centre.lightness() > corner.lightness() + 60  # a bright orb on a dark room
    assert corner.blue() > corner.red()  # calm blue, not clinical white


def test_lost_partner_has_no_ring(orb, stand_in, make_state) -> None:
    t0 = stand_in.clock.now()
    state = make_state(t0, pacer=PacerState(t0_s=t0, phase0=0.0, rate_bpm=6.0),
                       partners={"A": {"status": "lost"}, "B": {}})
    stand_in.states.publish(state)
    assert set(orb.frame_at(t0).partners) == {"B"}


def test_many_frames_survive_in_a_fresh_process() -> None:
    """PySide6 6.12 on Python 3.11 lost a reference to None per void call: ~16k frames."""
    code = textwrap.dedent(
        """
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QRectF
        from PySide6.QtGui import QImage, QPainter
        from PySide6.QtWidgets import QApplication
        from ui.orb import OrbFrame, paint_orb
        app = QApplication([])
        img = QImage(24, 16, QImage.Format.Format_RGB32)
        rect = QRectF(0, 0, 24, 16)
        p = QPainter(img)
        before = sys.getrefcount(None)
        for k in range(50_000):  # every frame makes a dozen void Qt calls
            paint_orb(p, rect, OrbFrame(level=(k % 100) / 100, partners={"A": 0.3}))
            p.setOpacity(1.0)
        lost = before - sys.getrefcount(None)
        p.end()
        print("lost", lost)
        sys.exit(0 if lost < 1000 else 3)
        """
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-500:]


def test_paint_orb_reports_radius() -> None:
    img = QImage(200, 100, QImage.Format.Format_RGB32)
    p = QPainter(img)
    try:
        r = paint_orb(p, QRectF(0, 0, 200, 100), OrbFrame(level=1.0))
    finally:
        p.end()
    assert r == pytest.approx(radius_for_level(1.0, 200, 100))


def _word_pixels(stand_in, qtbot, make_state, **options: object) -> int:
    """Pixels of the bottom band that differ from the orb drawn without words."""
    t0 = stand_in.clock.now()
    stand_in.states.publish(make_state(t0, pacer=PacerState(t0_s=t0 - 2.0, phase0=0.0,
                                                            rate_bpm=6.0)))  # mid-inhale
    images = []
    for opts in ({"show_words": False}, options):
        w = OrbWindow(stand_in, fps=60, show_partners=False, **opts)  # type: ignore[arg-type]
        qtbot.addWidget(w)
        w.resize(960, 540)
        images.append(_render(w))
    bare, worded = images
    return sum(bare.pixel(x, y) != worded.pixel(x, y)
               for x in range(0, 960, 2) for y in range(400, 540, 2))


def test_words_can_be_off_or_large(qtbot, stand_in, make_state) -> None:
    """``--no-words`` draws none; ``--large-words`` (a TV across the room) draws "in"
    with about four times the ink of the usual size."""
    normal = _word_pixels(stand_in, qtbot, make_state)
    large = _word_pixels(stand_in, qtbot, make_state, word_scale=2.0)
    off = _word_pixels(stand_in, qtbot, make_state, show_words=False)
    assert off == 0 < normal
    assert large > 2.5 * normal


def test_demo_and_run_take_the_word_options() -> None:
    from coach.cli import build_parser

    for command in ("demo", "run"):
        parser = build_parser(command)
        args = parser.parse_args([command, "--large-words"] if command != "run" else
                                 [command, "--a", "X", "--no-words"])
        assert getattr(args, "large_words", False) or getattr(args, "no_words", False)
