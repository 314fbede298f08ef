"""The UI figures of ``coach bench``: how late frames are counted, and a real short run.

The figures themselves are measured by ``coach bench`` (not asserted against targets
here: a test cannot own the machine). These tests check the counting on frame times
built by hand, that one real phase yields every figure, and that an hour of trends does
not make a dashboard refresh expensive again (wide antialiased pens did: 0.3 s a redraw).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from ui.bench import HISTORY_S, frame_figures, prefill_trends, run_phase


def test_a_missed_refresh_is_late_and_jitter_is_not() -> None:
    timer_ms = 17.0
    gaps_ms = [17.0] * 90 + [24.0] * 5 + [35.0, 51.0] + [17.0] * 3  # 100 gaps
    starts = np.concatenate([[0.0], np.cumsum(gaps_ms) / 1000.0])
    fig = frame_figures(starts, timer_ms)
    # due 17 ms after the last frame; late beyond one 60 Hz interval more (33.67 ms)
    assert fig["late"] == 2
    assert fig["late_percent"] == pytest.approx(2.0)
    assert fig["interval_ms"]["max"] == pytest.approx(51.0)
    assert fig["frames"] == 101
    assert fig["fps"] == pytest.approx(100 / (sum(gaps_ms) / 1000.0), rel=1e-3)


def test_no_frames_is_not_a_figure() -> None:
    assert frame_figures([], 17.0)["late_percent"] is None
    assert frame_figures([1.0], 17.0)["late_percent"] is None


def test_one_real_phase_yields_every_figure() -> None:
    """Three straps through the drivers, RealClock, orb and dashboard offscreen."""
    fig = run_phase(3.0, dashboard=True, timeout_s=120.0)
    orb = fig["orb"]
    assert orb["frames"] > 60  # the orb kept drawing while the straps streamed
    assert 0.0 <= orb["late_percent"] <= 100.0
    assert fig["cpu_percent"] > 0.0
    assert fig["dashboard_states_seen"] >= 40  # 10 states a second reached it
    assert fig["session_errors"] == 0


def test_an_hour_of_trends_redraws_cheaply(qapp, qtbot, stand_in, make_state) -> None:
    from coach.types import PacerState
    from ui.dashboard import TherapistDashboard

    dash = TherapistDashboard(stand_in)
    qtbot.addWidget(dash)
    dash.resize(1920, 1080)
    dash.show()
    qtbot.waitExposed(dash)
    t0 = stand_in.clock.now()
    prefill_trends(dash.trend, t0, HISTORY_S)
    assert dash.trend.count == int(HISTORY_S / 0.5)
    pacer = PacerState(t0_s=t0, phase0=0.0, rate_bpm=6.0)
    cpu = []
    for k in range(1, 16):  # 1.5 s of states: the trends redraw three times
        stand_in.clock.t = t0 + 0.1 * k
        stand_in.states.publish(make_state(stand_in.clock.t, pacer=pacer))
        c = time.thread_time()
        dash.tick()
        qapp.processEvents()  # the plots paint now, in this thread, and count
        cpu.append(time.thread_time() - c)
    # CPU time (not wall): other processes on the machine do not count
    assert float(np.mean(cpu)) < 0.05, f"{1000 * np.mean(cpu):.0f} ms CPU a refresh"
