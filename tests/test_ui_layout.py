"""The dashboard fits a laptop: at 1280x720 and 1366x768, after 3 simulated minutes (a
couple, and a triad with the therapist's strap), the window is no larger than the
screen, every button lies inside it, and no card's status line is cut off.

The states come from a real simulated session (``scripts/screenshots.py``'s
``simulate``: virtual clock, real drivers over simulated straps); the grabs are saved in
``out/`` for a person to look at.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QApplication, QLabel, QPushButton

from ui.dashboard import TherapistDashboard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from screenshots import Replay, simulate  # noqa: E402

OUT = ROOT / "out"
SCREENS = ((1280, 720), (1366, 768))


@pytest.fixture(scope="module", params=["calm-anchor", "triad"])
def session_states(request: pytest.FixtureRequest) -> tuple[str, list, float]:
    states, origin = simulate(request.param, 1, 180.0)
    return request.param, states, origin


def inside(widget: QLabel | QPushButton, window: TherapistDashboard) -> bool:
    """The widget's whole rectangle lies in the window and none of it is clipped away."""
    top_left = widget.mapTo(window, QPoint(0, 0))
    rect = QRect(top_left, widget.size())
    shown = widget.visibleRegion().boundingRect()
    return window.rect().contains(rect) and shown.size() == widget.size()


@pytest.mark.parametrize("screen", SCREENS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_dashboard_fits_the_screen(qapp: QApplication, session_states, screen) -> None:
    scenario, states, origin = session_states
    width, height = screen
    replay = Replay(origin)
    labels = tuple(sorted(states[-1].partners))
    dash = TherapistDashboard(replay, labels=labels, on_start=lambda: None,  # type: ignore[arg-type]
                              on_stop=lambda: None)
    try:
        dash.set_running(True)
        for k, state in enumerate(states):
            replay.t = state.t_s
            replay.states.publish(state)
            if k % 50 == 0:
                dash.tick()
        for _ in range(5):
            dash.tick()
        dash.resize(width, height)  # as maximised on that screen
        dash.show()
        for _ in range(5):
            qapp.processEvents()
        OUT.mkdir(exist_ok=True)
        assert dash.grab().save(str(OUT / f"test_ui_layout_{scenario}_{width}x{height}.png"))
        min_size = dash.minimumSizeHint()
        assert min_size.width() <= width and min_size.height() <= height, min_size
        assert (dash.width(), dash.height()) == (width, height)
        buttons = [b for b in dash.findChildren(QPushButton) if b.isVisible()]
        assert len(buttons) >= 10  # start/stop, baseline, pause, anchors, four markers
        clipped = [b.text() for b in buttons if not inside(b, dash)]
        assert clipped == []
        for label, panel in dash.panels.items():
            strap = panel.strap
            assert "connected" in strap.text(), label
            assert inside(strap, dash), label
            # the wrapped status line needs no more height than it has
            assert strap.heightForWidth(strap.width()) <= strap.height(), label
            for value in (panel.hr, panel.rate):
                assert inside(value, dash) and value.text().endswith(("bpm", "/min"))
        assert inside(dash.header.sync, dash) and "sync" in dash.header.sync.text()
    finally:
        dash.close()
