"""The chest-accelerometer breathing estimator against a person whose breath we know."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from coach.breath import AccBreath, BreathDetector
from coach.types import TWO_PI
from sims.person import Person, PersonSpec


def _follow(spec: PersonSpec, seconds: float, seed: int = 11):
    person = Person(spec, np.random.default_rng(seed))
    est = AccBreath()
    truth_onsets, rates, phases = [], [], []
    prev_phase = person.phase
    for k in range(1, int(seconds / 0.25) + 1):
        sig = person.advance(k * 0.25)
        if person.phase < prev_phase:  # the true breath wrapped: an inhale onset
            frac = (TWO_PI - prev_phase) / (person.phase + TWO_PI - prev_phase)
            truth_onsets.append(person.t_s - 0.25 + 0.25 * frac)
        prev_phase = person.phase
        est.push(sig.acc)
        est.push_beats(tuple(sig.beat_t_s), tuple(sig.rr_ms))
        e = est.estimate(person.t_s)
        rates.append((person.t_s, e.rate_bpm))
        phases.append((person.t_s, e.phase, person.phase))
    return person, est, np.array(truth_onsets), rates, phases


@pytest.mark.parametrize("arousal", [0.1, 0.5, 0.9])
def test_rate_matches_the_true_breathing_rate(arousal: float) -> None:
    _, _, onsets, rates, _ = _follow(PersonSpec("A", arousal=arousal), 240)
    late_onsets = onsets[onsets > 60]
    true_bpm = 60.0 * (len(late_onsets) - 1) / (late_onsets[-1] - late_onsets[0])
    late = [r for t, r in rates if t > 60]
    assert all(r is not None for r in late[-100:])
    # breaths vary by about 12 % from one to the next: the median of the live estimate
    # stays within 0.7/min of the true mean rate
    assert np.median([r for r in late if r is not None]) == pytest.approx(true_bpm, abs=0.7)


def test_inhale_onsets_are_found_where_they_happen() -> None:
    _, est, onsets, _, _ = _follow(PersonSpec("A", arousal=0.3), 240)
    found = np.array([t for t in est.detector.inhale_onsets if t > 60])
    assert len(found) >= 5
    errors = [np.min(np.abs(onsets - t)) for t in found]
    assert np.median(errors) < 0.6  # seconds: polarity right, onset on the trough


def test_phase_tracks_the_true_phase() -> None:
    _, _, _, _, phases = _follow(PersonSpec("A", arousal=0.3), 240)
    late = [(e, p) for t, e, p in phases if t > 90 and e is not None]
    diff = np.array([e - p for e, p in late])
    assert abs(np.mean(np.exp(1j * diff))) > 0.7  # consistently close, not random


def test_band_pass_removes_energy_above_3_hz() -> None:
    sos = AccBreath()._sos
    fs = 25.0
    t = np.arange(0, 120, 1 / fs)
    fast = np.sin(2 * np.pi * 5.0 * t)
    slow = np.sin(2 * np.pi * 0.2 * t)
    assert np.std(signal.sosfilt(sos, fast)[500:]) < 0.01
    assert np.std(signal.sosfilt(sos, slow)[500:]) > 0.6


def test_detector_reports_nothing_for_a_flat_line() -> None:
    det = BreathDetector()
    t = np.arange(0, 60, 0.04)
    det.push(t, np.zeros_like(t))
    est = det.estimate(60.0)
    assert est.rate_bpm is None and est.phase is None
