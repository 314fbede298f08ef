"""Report: one self-contained HTML page with plots and a summary."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coach.recording import Recorder, RecordingReader
from coach.report import breath_plv, load_series, render_report, time_to_convergence
from coach.types import Command, Marker, PacerState


def _record(path: Path, make_state: Any, minutes: float = 6.0) -> None:
    clock = [0.0]
    with Recorder(path, labels=("A", "B"), now=lambda: clock[0]) as rec:
        for k in range(int(minutes * 600)):
            t = (k + 1) * 0.1
            locked = t > 150.0  # B locks onto A's breathing after 2.5 min
            phase_a = (2 * math.pi * 0.1 * t) % (2 * math.pi)
            phase_b = phase_a if locked else (2 * math.pi * 0.23 * t) % (2 * math.pi)
            rate_b = 6.0 if t > 100.0 else 14.0
            pacer = PacerState(t, 0.0, 6.0)
            partners = {"A": {"rate_bpm": 6.0, "phase": phase_a, "coherence": 0.5},
                        "B": {"rate_bpm": rate_b, "phase": phase_b}}
            rec.write_state(make_state(t, pacer=pacer, partners=partners))
            if k == 2000:
                clock[0] = t
                rec.write(Command("marker", "repair", ""))
                rec.write(Marker(t, "repair"))


def test_report_is_one_self_contained_page(tmp_path: Path, make_state: Any) -> None:
    path = tmp_path / "s.coach"
    _record(path, make_state)
    messages: list[str] = []
    with RecordingReader(path) as reader:
        page = render_report(reader, messages.append)
    assert page.startswith("<!doctype html>") and "http" not in page.replace(
        "https://", "")  # nothing fetched from elsewhere
    assert page.count("<svg") == 4  # breathing, heart rate, calm, synchrony: inline
    assert re.search(r'data-key="calm" data-ymin="0" data-ymax="1"', page)  # full range
    assert "time to convergence" in page and "1.7 min" in page  # B within 1/min from 100 s
    # A breathes with the orb and B locks onto A, so onto the orb too: the orb explains
    # their synchrony, judged offline from the recorded phases against pseudo-couples
    assert "time synchronous beyond chance (quiet breathing)</th><td>0 % (95 % CI 0-" in page
    assert "Wilson; 6 independent one-minute windows" in page
    assert "A: coherence ratio (mean)" in page and "0.50" in page
    assert messages  # progress for the user


def test_synchrony_rises_when_breaths_lock(tmp_path: Path, make_state: Any) -> None:
    path = tmp_path / "s.coach"
    _record(path, make_state)
    with RecordingReader(path) as reader:
        series = load_series(reader)
    plv = breath_plv(series, "A", "B")
    t_s = series.t_min * 60
    assert np.nanmax(plv[t_s < 140]) < 0.5 and np.nanmin(plv[t_s > 220]) > 0.99
    assert time_to_convergence(series) is not None
    assert [kind for _, kind, _ in series.markers] == ["repair"]
    assert series.markers[0][0] == pytest.approx(200.1 / 60.0)


def test_report_of_an_empty_recording(tmp_path: Path) -> None:
    path = tmp_path / "s.coach"
    Recorder(path, labels=("A",)).close()
    with RecordingReader(path) as reader:
        page = render_report(reader)
    assert "The plots need at least 2 minutes" in page and "<svg" not in page


def test_report_of_a_simulated_session_shows_the_sessions_own_figures(tmp_path: Path) -> None:
    import subprocess
    import sys

    from coach.report import SESSION_SYNC, summarize

    rec = tmp_path / "s.coach"
    subprocess.run([sys.executable, "-m", "coach.cli", "demo", "--headless", "--duration", "360",
                    "--speed", "max", "--record", str(rec)], check=True, capture_output=True,
                   timeout=300)
    with RecordingReader(rec) as reader:
        series = load_series(reader)
        page = render_report(reader)
    rows, sync, _ = summarize(series)
    assert set(sync) == set(SESSION_SYNC)  # synchrony beside its chance levels, as live
    names = dict(rows)
    for label in ("A", "B"):
        assert float(names[f"{label}: mean rate"].split()[0]) > 4.0
        assert f"{label}: coherence ratio (mean)" in names
    assert "Wilson" in names["time synchronous beyond chance (quiet breathing)"]
    assert "time synchronous beyond chance (while talking)" in names
    assert page.count("<svg") == 4


def test_report_colours_are_the_dashboards() -> None:
    from coach import report
    from ui import style

    assert report.PARTNER_COLOR == style.PARTNER_COLOR
    assert (report.PACER_COLOR, report.MARKER_COLOR) == (style.PACER_COLOR, style.MARKER_COLOR)
    assert report.SYNC_COLORS == style.SYNC_COLORS


def test_report_lists_markers_events_and_provenance(tmp_path: Path, make_state: Any) -> None:
    path = tmp_path / "s.coach"
    clock = [0.0]
    notes = ["raised voices <b>& 'quotes'</b>", "second\nline", ""]
    with Recorder(path, labels=("A", "B"), now=lambda: clock[0],
                  settings={"source": "demo", "scenario": "dropout", "seed": 7}) as rec:
        for k in range(1800):  # 3 minutes
            t = (k + 1) * 0.1
            alert = 100.0 < t < 110.0
            gone = "lost" if 60.0 < t < 100.0 else "ok"  # B's strap away for 40 s
            rec.write_state(make_state(t, anchor="A" if t < 150 else "B",
                                       partners={"A": {"calm": 0.6, "alert": alert},
                                                 "B": {"calm": 0.4, "status": gone}}))
            if k in (300, 900, 1500):
                rec.write(Marker(t, f"kind{k}", notes[(k // 600)]))
    with RecordingReader(path) as reader:
        page = render_report(reader)
    import html

    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    for note in notes[:2]:
        assert note in text
    for expected in ("marker 1: kind300", "marker 3: kind1500", "strap lost (B)",
                     "strap back (B)", "after 40 s", "alert (A)", "for 10 s", "anchor",
                     "partner B", "simulated couple", "dropout, seed 7", "s.coach",
                     "closed cleanly", "What the figures mean", "Calm score"):
        assert expected in text, expected
    assert "docs/coregulation.md" not in page  # the definitions are on the page
    assert "<b>&" not in page  # notes are escaped, not markup
