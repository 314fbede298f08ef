"""Event and state types: validation, immutability, JSON without NaN."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from coach.types import (
    TWO_PI,
    AccChunk,
    EcgChunk,
    HeartRate,
    Marker,
    PacerState,
    PartnerState,
    SessionState,
    StrapStatus,
    orb_level,
)


def test_chunks_hold_a_private_read_only_copy() -> None:
    raw = np.zeros((4, 3))
    chunk = AccChunk(1.0, "A", 200.0, raw)
    raw[0, 0] = 99.0
    assert chunk.acc_mg[0, 0] == 0.0
    with pytest.raises(ValueError):
        chunk.acc_mg[0, 0] = 1.0
    assert chunk.end_s == pytest.approx(1.0 + 4 / 200.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.t_s = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "make",
    [
        lambda: AccChunk(0.0, "A", 200.0, np.zeros((3, 2))),
        lambda: AccChunk(0.0, "A", 0.0, np.zeros((3, 3))),
        lambda: EcgChunk(0.0, "A", 130.0, np.zeros((3, 3))),
        lambda: HeartRate(0.0, "A", 60.0, rr_ms=(1000.0,), beat_t_s=()),
        lambda: HeartRate(0.0, "A", 60.0, rr_ms=(-5.0,), beat_t_s=(0.0,)),
        lambda: HeartRate(0.0, "Alice", 60.0),
        lambda: StrapStatus(0.0, "B", "ok", battery_pct=140),
        lambda: Marker(0.0, "  "),
        lambda: PartnerState("A", phase=TWO_PI),
        lambda: PartnerState("A", calm=1.5),
        lambda: PacerState(0.0, 0.0, 0.0),
        lambda: PacerState(0.0, -0.1, 6.0),
    ],
)
def test_invalid_values_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_participants_are_labels_not_names() -> None:
    for label in ("A", "B", "T"):
        assert HeartRate(0.0, label, 60.0).label == label
    with pytest.raises(ValueError):
        StrapStatus(0.0, "Maria", "ok")


def test_pacer_phase_advances_with_the_rate_and_wraps() -> None:
    p = PacerState(t0_s=10.0, phase0=0.0, rate_bpm=6.0)  # one breath every 10 s
    assert p.phase_at(10.0) == 0.0
    assert p.phase_at(12.5) == pytest.approx(math.pi / 2)
    assert p.phase_at(20.0) == pytest.approx(0.0, abs=1e-9)
    assert 0.0 <= p.phase_at(1e6) < TWO_PI


def test_orb_grows_over_the_inhale_and_shrinks_over_the_exhale() -> None:
    p = PacerState(0.0, 0.0, 6.0, ie_ratio=4 / 6)  # 4 s in, 6 s out
    assert p.inhale_fraction == pytest.approx(0.4)
    inhale = [p.level_at(t) for t in np.linspace(0.0, 4.0, 41)]
    exhale = [p.level_at(t) for t in np.linspace(4.0, 10.0, 61)]
    assert inhale[0] == pytest.approx(0.0) and inhale[-1] == pytest.approx(1.0)
    assert np.all(np.diff(inhale) >= 0) and np.all(np.diff(exhale) <= 0)
    assert exhale[-1] == pytest.approx(0.0, abs=1e-9)
    # continuous everywhere, including at the turns
    levels = [orb_level(x, 0.4) for x in np.linspace(0, 2 * TWO_PI, 4001)]
    assert np.max(np.abs(np.diff(levels))) < 0.01


def test_state_json_has_no_nan_and_relative_times() -> None:
    partners = {
        "A": PartnerState("A", "ok", rate_bpm=float("nan"), hr_bpm=61.234, phase=1.0),
        "B": PartnerState("B", "lost"),
    }
    pacer = PacerState(t0_s=105.0, phase0=1.0, rate_bpm=8.0)
    state = SessionState(110.0, partners, "A", pacer, (Marker(108.0, "repair", "eye contact"),))
    out = state.to_json(t_origin_s=100.0)
    text = json.dumps(out, allow_nan=False)  # raises on NaN
    assert out["t_s"] == 10.0
    assert out["partners"]["A"]["rate_bpm"] is None
    assert out["partners"]["B"]["status"] == "lost"
    assert out["pacer"]["t0_s"] == 5.0
    assert out["pacer"]["phase"] == pytest.approx(pacer.phase_at(110.0), abs=1e-5)
    assert out["markers"] == [{"t_s": 8.0, "kind": "repair", "note": "eye contact"}]
    assert "Maria" not in text
